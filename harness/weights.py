"""Resolving pretrained weights offline-first, the same way for every backbone family.

Order: an explicit path → weights roots (``$HARNESS_WEIGHTS_ROOT``, ``<data_root>/../weights``,
``$HARNESS_HOME/weights``) → the local caches of the HF hub and torch hub → a download
when online → one clear error naming the file and where to put it. A declared
sha256 is checked once per (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import WeightsMissingError

if TYPE_CHECKING:
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


def weights_roots(settings: "Settings | None") -> list[Path]:
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
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None, entry: str) -> Path:
    if expected:
        st = path.stat()
        got = _sha256(str(path), st.st_size, st.st_mtime)
        if not got.startswith(expected.lower()):
            raise WeightsMissingError(f"backbone {entry!r}: {path} has sha256 {got[:16]}…, expected {expected[:16]}…")
    return path


def _hf_cached(src: WeightSource) -> Path | None:
    if not (src.hf_repo and src.hf_file):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(src.hf_repo, src.hf_file, revision=src.revision)
    return Path(hit) if isinstance(hit, str) else None


def _torch_hub_cached(src: WeightSource) -> Path | None:
    if not src.url:
        return None
    import torch.hub

    p = Path(torch.hub.get_dir()) / "checkpoints" / Path(src.url).name
    return p if p.is_file() else None


def _download(src: WeightSource) -> Path | None:
    if offline():
        return None
    try:
        if src.hf_repo and src.hf_file:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(src.hf_repo, src.hf_file, revision=src.revision))
        if src.url:
            import torch.hub

            dst = Path(torch.hub.get_dir()) / "checkpoints" / Path(src.url).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(src.url, str(dst), progress=False)
            return dst
    except Exception:  # noqa: BLE001 - any network failure falls through to the one clear error below
        return None
    return None


def where_to_put(src: WeightSource, settings: "Settings | None") -> str:
    roots = weights_roots(settings)
    target = f"{roots[0] / src.filename}" if (roots and src.filename) else "a local file (set args.weights)"
    extra = f" or the HF hub cache of {src.hf_repo}/{src.hf_file}" if src.hf_repo else ""
    return f"put it at {target}{extra}"


def resolve_weights(entry: str, src: WeightSource, settings: "Settings | None", explicit: str | None = None) -> Path:
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
    for finder in (_hf_cached, _torch_hub_cached, _download):
        hit = finder(src)
        if hit is not None and hit.is_file():
            return check_sha256(hit, src.sha256, entry)
    what = src.filename or src.hf_file or (Path(src.url).name if src.url else "weights")
    raise WeightsMissingError(
        f"backbone {entry!r}: weights {what} not available offline; {where_to_put(src, settings)}, "
        "or use --random-init"
    )


def resolve_snapshot(entry: str, hf_repo: str, revision: str | None, settings: "Settings | None",
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
    except Exception:  # noqa: BLE001 - not cached locally
        pass
    if not offline():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(hf_repo, revision=revision))
        except Exception:  # noqa: BLE001 - network failure → the clear error below
            pass
    roots = weights_roots(settings)
    where = roots[0] / name if roots else Path(name)
    raise WeightsMissingError(
        f"backbone {entry!r}: model {hf_repo} not available offline; put its from_pretrained folder at {where} "
        "or in the HF hub cache, or use --random-init"
    )
