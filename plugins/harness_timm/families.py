"""Which modules of a timm network are read out, per architecture family.

A family is found from the module that defines the timm model (``timm.models.resnet``,
``…vision_transformer`` …), not from the model name, so every variant of a family
(ViT-S/B/L, ResNet-18…152, SE-ResNeXt, EfficientNet-B0…B7/Lite0…4) gets the same
layer sets without listing names. Layer names are module paths (``layer2``,
``blocks.7``) except where a paper's naming is the convention (``layer0`` for the
ResNet stem, as in the SE-ResNeXt readouts of Gaziv et al. 2022).

``channels_last`` is the measured default of each family on CPU (see
``benchmarks/bench_extraction.py``): it speeds up convolutions and does nothing for
transformer blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.kit.libfacts import library_fact

if TYPE_CHECKING:
    from torch import nn

LayerMap = dict[str, str]


@dataclass(frozen=True)
class Family:
    name: str
    #: layer-set name → function of the built net giving ordered layer name → module path
    layer_sets: dict[str, Callable[[nn.Module], LayerMap]]
    default_set: str
    channels_last: bool
    #: CPU bf16 autocast faster and tokens r ≥ 0.999 vs fp32 (benchmarks/bench_extraction.py, random init:
    #: ViT-B/16 2.99x r 0.99998, ResNet-50 1.89x r 0.99989, SE-ResNeXt-50 1.95x r 0.99998; EfficientNet-Lite
    #: real weights r 0.9968 — below the bar, so fp32)
    cpu_bf16: bool = False


def _vit_blocks(net: nn.Module) -> LayerMap:
    return {f"blocks.{i}": f"blocks.{i}" for i in range(len(net.blocks))}  # type: ignore[arg-type]


def _resnet_stages(stem: str) -> Callable[[nn.Module], LayerMap]:
    """The five stages: ``layer0`` is the stem (conv, BN, ReLU, max-pool), then ``layer1``…``layer4``."""

    def stages(net: nn.Module) -> LayerMap:
        return {"layer0": stem, **{f"layer{s}": f"layer{s}" for s in range(1, 5)}}

    return stages


def _resnet_blocks(stem: str) -> Callable[[nn.Module], LayerMap]:
    """The stem plus every residual block: 1 + 3 + 4 + 6 + 3 = 17 for the 50-layer nets."""

    def blocks(net: nn.Module) -> LayerMap:
        out = {"layer0": stem}
        for s in range(1, 5):
            for i in range(len(getattr(net, f"layer{s}"))):
                out[f"layer{s}.{i}"] = f"layer{s}.{i}"
        return out

    return blocks


def _effnet_stages(net: nn.Module) -> LayerMap:
    out = {f"stage{i + 1}": f"blocks.{i}" for i in range(len(net.blocks))}  # type: ignore[arg-type]
    out["conv_head"] = "bn2"
    return out


def _effnet_blocks(net: nn.Module) -> LayerMap:
    out = {f"blocks.{s}.{i}": f"blocks.{s}.{i}" for s, stage in enumerate(net.blocks) for i in range(len(stage))}  # type: ignore[arg-type]
    out["conv_head"] = "bn2"
    return out


#: defining module of the timm model → its family
FAMILIES: dict[str, Family] = {
    "timm.models.vision_transformer": Family("vit", {"blocks": _vit_blocks}, "blocks", channels_last=False, cpu_bf16=True),
    "timm.models.resnet": Family(
        "resnet", {"stages": _resnet_stages("maxpool"), "blocks": _resnet_blocks("maxpool")}, "stages", channels_last=True,
        cpu_bf16=True,
    ),
    # timm's port of Cadene's pretrainedmodels SENet: the stem is ``layer0`` + ``pool0``
    "timm.models.senet": Family(
        "senet", {"stages": _resnet_stages("pool0"), "blocks": _resnet_blocks("pool0")}, "stages", channels_last=True,
        cpu_bf16=True,
    ),
    "timm.models.efficientnet": Family(
        "efficientnet", {"stages": _effnet_stages, "blocks": _effnet_blocks}, "stages", channels_last=True
    ),
}


def family_module(model: str, cache_dir: Path | None = None) -> str | None:
    """The module defining a timm model name (with or without a ``.tag``), or None if timm lacks it.

    Remembered per timm version under ``cache_dir`` (:mod:`harness.kit.libfacts`): planning asks it for
    every timm entry and must not import timm to do so."""

    def ask() -> str | None:
        from timm.models import is_model, model_entrypoint, split_model_name_tag

        arch, _ = split_model_name_tag(model)
        if not is_model(arch):
            return None
        return model_entrypoint(arch).__module__

    return library_fact("timm", f"family_module:{model}", ask, cache_dir)
