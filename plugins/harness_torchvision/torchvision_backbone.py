"""torchvision classification nets (MobileNetV2, AlexNet, ResNet-50), tapped at every stage.

Each architecture lists its layer sets and its weight variants (``tag``) in one table.
Weights resolve through :func:`harness.kit.weights.resolve_weights`: explicit path →
weights roots → the torch hub cache (``~/.cache/torch/hub/checkpoints/<basename of the
URL>``) → a download when online → one clear error. Hub checkpoints are read with
``torch.load(weights_only=True)``; the hash in their file name is the sha256 prefix
torch hub itself checks, and is checked here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contracts import LayerTokens
from harness.errors import RegistryError
from harness.kit.hooked import HookedBackbone, to_layer_tokens
from harness.kit.weights import (
    WeightSource,
    load_state_dict,
    load_strict,
    resolve_weights,
    weights_unavailable,
)
from harness.specs import Preprocess
from harness_torchvision.specs import TORCHVISION, TVArgs

if TYPE_CHECKING:  # torch is imported when the net is built: planning reads the tables below only
    from torch import nn

LayerMap = dict[str, str]

#: the last block of each MobileNetV2 stage (resolution or width change), then the final 1×1 conv
MOBILENET_V2_STAGES = {
    "stage1": "features.1",
    "stage2": "features.3",
    "stage3": "features.6",
    "stage4": "features.10",
    "stage5": "features.13",
    "stage6": "features.16",
    "stage7": "features.17",
    "conv_last": "features.18",
}
#: AlexNet after each ReLU (conv1–5, fc6–7) and the logits (fc8), the readout of the Algonauts baselines
ALEXNET_LAYERS = {
    "conv1": "features.1", "conv2": "features.4", "conv3": "features.7", "conv4": "features.9",
    "conv5": "features.11", "fc6": "classifier.2", "fc7": "classifier.5", "fc8": "classifier.6",
}
IMAGENET = Preprocess(resize=256, crop=224, interpolation="bilinear")
IMAGENET_232 = Preprocess(resize=232, crop=224, interpolation="bilinear")  #: torchvision's "V2" recipe weights
_HUB = "https://download.pytorch.org/models/"


def _static(layers: LayerMap) -> Callable[[nn.Module], LayerMap]:
    return lambda net: dict(layers)


def _resnet_stages(net: nn.Module) -> LayerMap:
    return {"layer0": "maxpool", **{f"layer{s}": f"layer{s}" for s in range(1, 5)}}


def _resnet_blocks(net: nn.Module) -> LayerMap:
    out = {"layer0": "maxpool"}
    for s in range(1, 5):
        out.update({f"layer{s}.{i}": f"layer{s}.{i}" for i in range(len(getattr(net, f"layer{s}")))})
    return out


@dataclass(frozen=True)
class Weights:
    source: WeightSource
    preprocess: Preprocess


def _hub(file: str, preprocess: Preprocess) -> Weights:
    """A download.pytorch.org checkpoint: also looked for as ``torchvision/<file>`` under a weights root.

    torch hub names files ``<name>-<first hex digits of the sha256>.pth``; that prefix is verified.
    """
    sha = re.search(r"-([0-9a-f]{8,})\.pth$", file)
    return Weights(WeightSource(filename=f"torchvision/{file}", url=_HUB + file, sha256=sha.group(1) if sha else None),
                   preprocess)


@dataclass(frozen=True)
class Arch:
    layer_sets: dict[str, Callable[[nn.Module], LayerMap]]
    default_set: str
    weights: dict[str, Weights]
    default_tag: str
    #: measured on CPU (benchmarks/bench_extraction.py)
    channels_last: bool
    #: CPU bf16 autocast faster with tokens r ≥ 0.999 (same benchmark; AlexNet 1.33x r 0.99998, ResNet-50 1.89x
    #: r 0.99989 at random init; MobileNetV2 real weights r 0.9983 — below the bar)
    cpu_bf16: bool = False


ARCHS: dict[str, Arch] = {
    "mobilenet_v2": Arch(
        {"stages": _static(MOBILENET_V2_STAGES)}, "stages",
        {
            # torchvision's QNNPACK INT8 weights dequantized to float (../shared/weights PROVENANCE.md)
            "QNNPACK_DEQUANT": Weights(WeightSource(
                filename="mobilenet_v2_imagenet/mobilenet_v2_torchvision_dequant_fusedbn.safetensors"), IMAGENET),
            "IMAGENET1K_V1": _hub("mobilenet_v2-b0353104.pth", IMAGENET),
            "IMAGENET1K_V2": _hub("mobilenet_v2-7ebf99e0.pth", IMAGENET_232),
        },
        "QNNPACK_DEQUANT", channels_last=True,
    ),
    "alexnet": Arch(
        {"stages": _static(ALEXNET_LAYERS)}, "stages",
        {"IMAGENET1K_V1": _hub("alexnet-owt-7be5be79.pth", IMAGENET)},
        "IMAGENET1K_V1", channels_last=True, cpu_bf16=True,
    ),
    "resnet50": Arch(
        {"stages": _resnet_stages, "blocks": _resnet_blocks}, "stages",
        {
            "IMAGENET1K_V1": _hub("resnet50-0676ba61.pth", IMAGENET),
            "IMAGENET1K_V2": _hub("resnet50-11ad3fa6.pth", IMAGENET_232),
        },
        "IMAGENET1K_V1", channels_last=True, cpu_bf16=True,
    ),
}


class TorchvisionBackbone(HookedBackbone):
    spec = TORCHVISION
    args: TVArgs

    def _arch(self) -> Arch:
        arch = ARCHS.get(self.args.arch)
        if arch is None:
            raise RegistryError(f"{self.where('arch')}: no layer map for {self.args.arch!r} (known: {', '.join(ARCHS)})")
        if self.args.tag is not None and self.args.tag not in arch.weights:
            raise RegistryError(f"{self.where('tag')}: {self.args.tag!r} is not a {self.args.arch} weight tag "
                                f"(known: {', '.join(arch.weights)})")
        if self.args.layer_set is not None and self.args.layer_set not in arch.layer_sets:
            raise RegistryError(f"{self.where('layer_set')}: {self.args.layer_set!r} is not a {self.args.arch} "
                                f"layer set (known: {', '.join(arch.layer_sets)})")
        return arch

    def _weights(self) -> Weights:
        arch = self._arch()
        return arch.weights[self.args.tag or arch.default_tag]

    def _source(self) -> WeightSource:
        src = self._weights().source
        sha = self.ctx.entry.meta.get("sha256")
        return WeightSource(**{**src.__dict__, "sha256": sha}) if (sha and not self.args.weights) else src

    @property
    def preprocess(self) -> Preprocess:
        return self._weights().preprocess

    @property
    def cpu_bf16(self) -> bool:  # type: ignore[override]
        return self._arch().cpu_bf16

    @property
    def channels_last(self) -> bool:  # type: ignore[override]
        return self._arch().channels_last if self.args.channels_last is None else self.args.channels_last

    def layer_modules(self) -> dict[str, str]:
        arch = self._arch()
        full = arch.layer_sets[self.args.layer_set or arch.default_set](self.net)
        return self.pick_layers(full, self.args.layers)

    def layer_output(self, name: str, out: Any) -> LayerTokens:
        import torch

        if isinstance(out, torch.Tensor) and out.ndim == 2:  # fully connected: a 1×1 map
            return LayerTokens(local=out[:, :, None, None], global_=out)
        return to_layer_tokens(out, self.num_prefix_tokens)

    def _weights_file(self) -> Path:
        return resolve_weights(self.ctx.entry.name, self._source(), self.ctx.settings, explicit=self.args.weights)

    def check_args(self) -> None:
        self._arch()

    def weights_reason(self) -> str | None:
        return weights_unavailable(self.ctx.entry.name, self._source(), self.ctx.settings, self.args.weights)

    def build_module(self) -> nn.Module:
        import torchvision

        self._arch()
        net = getattr(torchvision.models, self.args.arch)(weights=None)
        if not self.ctx.random_init:
            path = self._weights_file()
            load_strict(net, load_state_dict(path, self.ctx.entry.name), self.ctx.entry.name, path)
        return net
