"""open_clip image towers as harness backbones.

Only the visual tower is built (``open_clip.model._build_vision_tower``), never the text
tower: it halves memory, and towers whose text side is a Hugging Face model (NLLB,
RoBERTa) would otherwise need the hub just to read a config. The checkpoint is the full
CLIP state_dict; its ``visual.*`` part is loaded strictly.

Weights resolve through :func:`harness.kit.weights.resolve_weights`, from the ``hf_hub``
entry open_clip declares for the tag (``open_clip_model.safetensors`` first, then the
pickle it names, read with ``weights_only=True``), then open_clip's own download cache.
OpenAI's original ``.pt`` files are TorchScript archives that cannot be read without
unpickling code, so they are never used: the same weights live in the ``timm/*.openai``
hub repos open_clip points to.

Extraction precision: keep the default fp32 on CPU for these towers; bf16 autocast was
measured slower there.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from harness.contracts import LayerTokens
from harness.errors import RegistryError, WeightsMissingError
from harness.kit.hooked import HookedBackbone, to_layer_tokens
from harness.kit.libfacts import library_fact
from harness.kit.weights import WeightSource, load_state_dict, load_strict, resolve_weights, weights_unavailable
from harness.specs import Preprocess
from harness_openclip.specs import OPENCLIP, OpenClipArgs

if TYPE_CHECKING:  # torch and open_clip (> 10 s to import) load when a tower is built, never to plan
    import torch
    from torch import nn

#: the distribution that installs ``open_clip``: its version keys the remembered registry answers
DIST = "open_clip_torch"

#: OpenAI's TorchScript checkpoints (the URL's parent folder is their sha256) need full unpickling
_UNSAFE_URL_HOSTS = ("openaipublic",)
_HF_DEFAULT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _safe_alternatives(filename: str) -> list[str]:
    """open_clip's own rule: prefer a ``.safetensors`` sibling of a pickled checkpoint."""
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def weight_sources(model: str, tag: str, cache_dir: Path | None = None) -> list[WeightSource]:
    """Every place open_clip itself would fetch (model, tag) from, safest format first.

    open_clip's download table is remembered per open_clip version under ``cache_dir``
    (:mod:`harness.kit.libfacts`), so planning does not import open_clip."""

    def ask() -> dict[str, str]:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(model, tag)
        return {"hf_hub": str(cfg.get("hf_hub", "") or ""), "url": str(cfg.get("url", "") or "")}

    cfg = library_fact(DIST, f"download:{model}:{tag}", ask, cache_dir)
    sources: list[WeightSource] = []
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, file = os.path.split(hub)  # "org/repo/" → default files; "org/repo/x.bin" → x.bin
        files = list(_HF_DEFAULT_FILES) if not file else _safe_alternatives(file)
        for f in files:
            sources.append(WeightSource(filename=f"open_clip/{model}/{tag}/{f}", hf_repo=repo, hf_file=f))
    url = cfg.get("url", "")
    if url and not any(h in url for h in _UNSAFE_URL_HOSTS):
        stem = Path(url).stem
        # mlfoundations release files end in the first 8 hex digits of their sha256
        digest = stem.rsplit("-", 1)[-1] if "mlfoundations" in url else None
        sources.append(WeightSource(filename=f"open_clip/{model}/{tag}/{Path(url).name}", url=url, sha256=digest))
    return sources


def _open_clip_cache(src: WeightSource) -> str | None:
    """open_clip downloads URL checkpoints to ``~/.cache/clip``; reuse them when present."""
    if not src.url:
        return None
    p = Path("~/.cache/clip").expanduser() / Path(src.url).name
    return str(p) if p.is_file() else None


class OpenClipBackbone(HookedBackbone):
    _taps: dict[str, str]
    _prefix: int
    _batch_first: bool

    spec = OPENCLIP
    args: OpenClipArgs

    # -- configuration ------------------------------------------------------------------
    @property
    def _tag(self) -> str | None:
        return None if self.ctx.random_init else self.args.pretrained

    def _model_cfg(self) -> dict[str, Any]:
        import open_clip

        cfg = open_clip.get_model_config(self.args.model)
        if cfg is None:
            raise RegistryError(
                f"backbone {self.ctx.entry.name!r}: args.model: open_clip has no model {self.args.model!r} "
                "(see open_clip.list_models())"
            )
        return cfg

    def _vision_cfg(self) -> dict[str, Any]:
        vision = {**self._model_cfg()["vision_cfg"], **self.args.vision_overrides}
        if vision.get("timm_model_name"):
            vision["timm_model_pretrained"] = False  # the CLIP checkpoint holds the trunk; never fetch ImageNet weights
        return vision

    def _check_tag(self) -> None:
        tag = self.args.pretrained
        if tag is None and not (self.ctx.random_init or self.args.weights):
            raise RegistryError(
                f"backbone {self.ctx.entry.name!r}: args.pretrained is null (random weights): set random_init: true on "
                "the entry so its results are labelled random, or name a tag or args.weights"
            )
        if tag is not None and not self._has_tag(tag):
            import open_clip

            known = open_clip.list_pretrained_tags_by_model(self.args.model)
            raise RegistryError(
                f"backbone {self.ctx.entry.name!r}: args.pretrained: {tag!r} is not a tag of {self.args.model} "
                f"(known: {', '.join(known) or 'none'})"
            )

    @property
    def preprocess(self) -> Preprocess:
        from dataclasses import asdict

        import open_clip
        from open_clip.transform import PreprocessCfg

        cfg = asdict(PreprocessCfg())
        if self.args.pretrained:
            cfg.update({k: v for k, v in open_clip.get_pretrained_cfg(self.args.model, self.args.pretrained).items()
                        if k in cfg})
        size = self._vision_cfg().get("image_size", 224)
        size = int(size if isinstance(size, int) else max(size))
        # 'squash' tags resize both sides to `size`; on square stimuli that equals shortest-side + centre crop
        return Preprocess(resize=size, crop=size, interpolation=cfg["interpolation"],
                          mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))

    # -- weights --------------------------------------------------------------------------
    def _weights_file(self) -> Path:
        entry = self.ctx.entry.name
        tag = self._tag
        if self.args.weights:
            return resolve_weights(entry, WeightSource(), self.ctx.settings, explicit=self.args.weights)
        assert tag is not None
        sources = weight_sources(self.args.model, tag, self.ctx.settings.cache_dir)
        if not sources:
            raise WeightsMissingError(f"backbone {entry!r}: open_clip declares no safe download for {self.args.model}:{tag}; "
                                      "set args.weights")
        first: WeightsMissingError | None = None
        for src in sources:
            try:
                return resolve_weights(entry, src, self.ctx.settings, explicit=_open_clip_cache(src))
            except WeightsMissingError as exc:
                first = first or exc
        assert first is not None
        raise first

    def _has_model(self) -> bool:
        def ask() -> bool:
            import open_clip

            return open_clip.get_model_config(self.args.model) is not None

        return library_fact(DIST, f"has_model:{self.args.model}", ask, self.ctx.settings.cache_dir)

    def _has_tag(self, tag: str) -> bool:
        def ask() -> bool:
            import open_clip

            return bool(open_clip.is_pretrained_cfg(self.args.model, tag))

        return library_fact(DIST, f"is_pretrained:{self.args.model}:{tag}", ask, self.ctx.settings.cache_dir)

    def check_args(self) -> None:
        if not self._has_model():
            self._model_cfg()  # raises the one-line error
        self._check_tag()

    def weights_reason(self) -> str | None:
        entry, settings = self.ctx.entry.name, self.ctx.settings
        if self.args.weights:
            return weights_unavailable(entry, WeightSource(), settings, explicit=self.args.weights)
        if self._tag is None:
            return None
        reasons = [weights_unavailable(entry, src, settings, explicit=_open_clip_cache(src))
                   for src in weight_sources(self.args.model, self._tag, settings.cache_dir)]
        if not reasons:
            return f"backbone {entry!r}: open_clip declares no safe download for {self.args.model}:{self._tag}; set args.weights"
        return None if any(r is None for r in reasons) else reasons[0]

    # -- network --------------------------------------------------------------------------
    def build_module(self) -> nn.Module:
        from open_clip.model import _build_vision_tower

        cfg = self._model_cfg()
        self._check_tag()
        tag_cfg: dict[str, Any] = {}
        if self.args.pretrained:
            import open_clip

            tag_cfg = open_clip.get_pretrained_cfg(self.args.model, self.args.pretrained)
        # the activation the weights were trained with: open_clip ≥3 only warns on a mismatch
        quick_gelu = bool(cfg.get("quick_gelu", False) or tag_cfg.get("quick_gelu", False))
        try:
            vis = _build_vision_tower(cfg["embed_dim"], self._vision_cfg(), quick_gelu=quick_gelu)
        except TypeError as exc:
            raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.vision_overrides: {exc}") from None
        if not self.ctx.random_init and (self._tag is not None or self.args.weights):
            self._load(vis, self._weights_file())
        from harness_openclip.towers import tower_taps

        self._taps, self._prefix = tower_taps(vis)
        self._batch_first = bool(getattr(getattr(vis, "transformer", None), "batch_first", True))
        return vis

    def _load(self, vis: nn.Module, path: Path) -> None:
        from open_clip.convert import convert_state_dict

        entry = self.ctx.entry.name
        sd = load_state_dict(path, entry)
        if next(iter(sd), "").startswith("module."):
            sd = {k[len("module."):]: v for k, v in sd.items()}
        sd = convert_state_dict(SimpleNamespace(visual=vis), sd)  # MobileCLIP's Apple layout → open_clip
        visual = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        if not visual:
            raise WeightsMissingError(f"backbone {entry!r}: {path} has no 'visual.*' tensors (not an open_clip CLIP checkpoint)")
        load_strict(vis, visual, entry, path)

    def layer_modules(self) -> dict[str, str]:
        self.net  # noqa: B018 - building the tower decides the taps
        return self._taps

    def layer_output(self, name: str, out: Any) -> LayerTokens:
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim == 3 and not self._batch_first:
            out = out.transpose(0, 1)
        return to_layer_tokens(out, self._prefix)

    def forward_net(self, x: torch.Tensor) -> Any:
        return self.net(x)
