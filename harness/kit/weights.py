"""Resolving pretrained weights offline-first, the same way for every backbone family.

Order: an explicit path → weights roots (``$HARNESS_WEIGHTS_ROOT``, ``<data_root>/../weights``,
``$HARNESS_HOME/weights``) → the local caches of the HF hub and torch hub → a download
when online → one clear error naming the file and where to put it. A declared
sha256 is checked once per (path, size, mtime).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import WeightsMissingError
from harness.kit.fetch import sha256_file

if TYPE_CHECKING:
    import torch

    from harness.settings import Settings


@dataclass(frozen=True)
class WeightSource:
    """Where an entry's weights may be found; any field may be left out."""

    #: path relative to a weights root, e.g. ``mobilenet_v2_imagenet/x.safetensors``
    filename: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    revision: str | None = None
    #: a torch-hub style checkpoint URL (its basename is looked up in the torch hub cache)
    url: str | None = None
    sha256: str | None = None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False") or bool(os.environ.get("HARNESS_OFFLINE"))


def weights_roots(settings: Settings | None) -> list[Path]:
    roots: list[Path] = []
    env = os.environ.get("HARNESS_WEIGHTS_ROOT")
    if env:
        roots.append(Path(env).expanduser())
    if settings is not None:
        if settings.data_root is not None:
            roots.append(Path(settings.data_root).parent / "weights")
        roots.append(settings.home / "weights")
    return roots


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime: float) -> str:
    """:func:`harness.kit.fetch.sha256_file`, remembered per (path, size, mtime): zoo listings re-check often."""
    return sha256_file(Path(path))


def check_sha256(path: Path, expected: str | None, entry: str) -> Path:
    if expected:
        st = path.stat()
        got = _sha256(str(path), st.st_size, st.st_mtime)
        if not got.startswith(expected.lower()):
            raise WeightsMissingError(f"backbone {entry!r}: {path} has sha256 {got[:16]}…, expected {expected[:16]}…")
    return path


def _hf_repo_cached(hf_repo: str) -> bool:
    """Whether the HF hub cache has a folder for this model repo at all.

    Why: the hub's own look-ups (``try_to_load_from_cache``, ``snapshot_download``) import its HTTP client
    (~0.2 s); without the repo's folder they can only answer "not cached", so planning a zoo of missing
    models skips them. Same folder rule as the hub (``constants.HF_HUB_CACHE``/``models--org--name``)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return (Path(constants.HF_HUB_CACHE) / "--".join(["models", *hf_repo.split("/")])).is_dir()


def _hf_cached(src: WeightSource) -> Path | None:
    if not (src.hf_repo and src.hf_file) or not _hf_repo_cached(src.hf_repo):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(src.hf_repo, src.hf_file, revision=src.revision)
    return Path(hit) if isinstance(hit, str) else None


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch (seconds) when torch is not loaded yet.

    Same rule as torch: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``;
    once torch is imported its own answer is used, so a ``torch.hub.set_dir`` call is honoured.
    """
    import sys

    hub = sys.modules.get("torch.hub")
    return Path(hub.get_dir()) if hub is not None else torch_hub_dir_from_env()


def torch_hub_dir_from_env() -> Path:
    """torch's default hub folder (``torch.hub._get_torch_home()/hub``), from the environment alone."""
    home = os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    return Path(os.path.expanduser(home)) / "hub"


def _torch_hub_cached(src: WeightSource) -> Path | None:
    if not src.url:
        return None
    p = torch_hub_dir() / "checkpoints" / Path(src.url).name
    return p if p.is_file() else None


@lru_cache(maxsize=32)
def reachable(host: str, timeout: float = 2.0) -> bool:
    """Whether ``host:443`` accepts a connection: saves minutes of client retries on a machine with no route out."""
    import socket

    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _download_hosts(src: WeightSource) -> list[str]:
    from urllib.parse import urlparse

    hosts = ["huggingface.co"] if (src.hf_repo and src.hf_file) else []
    if src.url and urlparse(src.url).hostname:
        hosts.append(str(urlparse(src.url).hostname))
    return hosts


def downloadable(src: WeightSource) -> bool:
    """Online (not ``HF_HUB_OFFLINE``/``HARNESS_OFFLINE``) and a host of ``src`` is reachable now."""
    return not offline() and any(reachable(h) for h in _download_hosts(src))


def _download(src: WeightSource) -> Path | None:
    if offline():
        return None
    if src.hf_repo and src.hf_file and reachable("huggingface.co"):
        try:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(src.hf_repo, src.hf_file, revision=src.revision))
        except Exception:
            pass
    if src.url and all(reachable(h) for h in _download_hosts(WeightSource(url=src.url))):
        try:
            import torch.hub

            dst = Path(torch.hub.get_dir()) / "checkpoints" / Path(src.url).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(src.url, str(dst), progress=False)
            return dst
        except Exception:
            return None
    return None


def where_to_put(src: WeightSource, settings: Settings | None) -> str:
    roots = weights_roots(settings)
    target = f"{roots[0] / src.filename}" if (roots and src.filename) else "a local file (set args.weights)"
    extra = f" or the HF hub cache of {src.hf_repo}/{src.hf_file}" if src.hf_repo else ""
    if src.url:
        extra += f" or {torch_hub_dir() / 'checkpoints' / Path(src.url).name}"
    return f"put it at {target}{extra}"


def resolve_weights(entry: str, src: WeightSource, settings: Settings | None, explicit: str | None = None,
                    download: bool = True) -> Path:
    """Return a local weights file for ``entry`` or raise one :class:`WeightsMissingError` line."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise WeightsMissingError(f"backbone {entry!r}: weights file {p} not found (args.weights)")
        return check_sha256(p, src.sha256, entry)
    if src.filename:
        for root in weights_roots(settings):
            if (root / src.filename).is_file():
                return check_sha256(root / src.filename, src.sha256, entry)
    for finder in (_hf_cached, _torch_hub_cached, _download) if download else (_hf_cached, _torch_hub_cached):
        hit = finder(src)
        if hit is not None and hit.is_file():
            return check_sha256(hit, src.sha256, entry)
    what = src.filename or src.hf_file or (Path(src.url).name if src.url else "weights")
    raise WeightsMissingError(
        f"backbone {entry!r}: weights {what} not available offline; {where_to_put(src, settings)}, "
        "or use --random-init"
    )


def weights_unavailable(entry: str, src: WeightSource, settings: Settings | None,
                        explicit: str | None = None) -> str | None:
    """The cheap check behind ``Backbone.unavailable_reason``: no hashing, no download.

    None when the file is local or can be downloaded right now; else the one-line reason.
    """
    try:
        resolve_weights(entry, WeightSource(**{**src.__dict__, "sha256": None}), settings, explicit, download=False)
    except WeightsMissingError as exc:
        return None if (not explicit and downloadable(src)) else str(exc)
    return None


def resolve_snapshot(entry: str, hf_repo: str, revision: str | None, settings: Settings | None,
                     explicit: str | None = None, folder: str | None = None) -> Path:
    """A folder holding a ``from_pretrained`` model (config + weights): explicit, weights root, HF cache, download."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise WeightsMissingError(f"backbone {entry!r}: model folder {p} not found (args.weights)")
        return p
    name = folder or hf_repo.replace("/", "--")
    for root in weights_roots(settings):
        if (root / name / "config.json").is_file():
            return root / name
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hf_repo, revision=revision, local_files_only=True))
    except Exception:
        pass
    if not offline():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(hf_repo, revision=revision))
        except Exception:
            pass
    roots = weights_roots(settings)
    where = roots[0] / name if roots else Path(name)
    raise WeightsMissingError(
        f"backbone {entry!r}: model {hf_repo} not available offline; put its from_pretrained folder at {where} "
        "or in the HF hub cache, or use --random-init"
    )


def load_state_dict(path: Path, entry: str) -> dict:
    """Read a state_dict safely: safetensors, or a torch pickle restricted to tensors (``weights_only``).

    Training checkpoints that wrap the weights (``{'state_dict': …}`` or ``{'model': …}``) are unwrapped,
    so callers see plain ``name → tensor`` mappings whatever the file's origin.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsMissingError(f"backbone {entry!r}: cannot read weights {path}: {first}") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightsMissingError(f"backbone {entry!r}: {path} holds a {type(obj).__name__}, not a state_dict")
    return obj


def load_strict(net: torch.nn.Module, sd: dict, entry: str, path: Path) -> None:
    """``load_state_dict(strict=True)`` whose failure is one line naming the file and the first mismatches."""
    unexpected: list[str] = []
    shapes: list[str] = []
    own = net.state_dict()
    for k, t in sd.items():
        if k not in own:
            unexpected.append(k)
        elif tuple(own[k].shape) != tuple(t.shape):
            shapes.append(f"{k} {tuple(t.shape)}≠{tuple(own[k].shape)}")
    # BatchNorm step counters carry no weights; checkpoints saved before torch 0.4.1 lack them
    sd = {**{k: own[k] for k in own if k.endswith("num_batches_tracked") and k not in sd}, **sd}
    missing = [k for k in own if k not in sd]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {what} (first: {v[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if v]
        raise WeightsMissingError(f"backbone {entry!r}: {path} does not fit the architecture: {'; '.join(parts)}")
    net.load_state_dict(sd, strict=True)


def local_snapshot(hf_repo: str, revision: str | None, settings: Settings | None,
                   marker: str = "config.json") -> Path | None:
    """A ``from_pretrained`` folder already on this machine (weights roots, then the HF hub cache); never downloads.

    ``marker`` is the file that makes a folder complete: ``config.json`` for a model,
    ``model_index.json`` for a diffusers pipeline.
    """
    name = hf_repo.replace("/", "--")
    for root in weights_roots(settings):
        if (root / name / marker).is_file():
            return root / name
    if not _hf_repo_cached(hf_repo):
        return None
    try:
        from huggingface_hub import snapshot_download

        p = Path(snapshot_download(hf_repo, revision=revision, local_files_only=True))
    except Exception:
        return None
    return p if (p / marker).is_file() else None


def snapshot_unavailable(entry: str, hf_repo: str, revision: str | None, settings: Settings | None,
                         explicit: str | None = None, marker: str = "config.json") -> str | None:
    """The cheap check behind ``unavailable_reason`` for snapshot-loaded backbones: no download, no network wait."""
    if explicit:
        p = Path(explicit).expanduser()
        return None if (p / marker).is_file() else f"backbone {entry!r}: model folder {p} has no {marker} (args.weights)"
    if local_snapshot(hf_repo, revision, settings, marker) is not None:
        return None
    if downloadable(WeightSource(hf_repo=hf_repo, hf_file=marker, revision=revision)):
        return None
    roots = weights_roots(settings)
    where = roots[0] / hf_repo.replace("/", "--") if roots else Path(hf_repo.replace("/", "--"))
    return (f"backbone {entry!r}: model {hf_repo} not available offline; put its from_pretrained folder "
            f"(with {marker}) at {where} or in the HF hub cache, or use --random-init")
