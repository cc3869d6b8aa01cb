"""CIFAR-10 ResNet-20/32/44/56/110: a small-input (32×32) family with real weights in ../shared/weights.

Layers: the stem and each of the three stages (``layer_set: stages``, default), or the stem
and every residual block (``layer_set: blocks``). Preprocessing is the training one of the
source repository: the image scaled to 32×32 (shorter side, then centre crop) and
normalised with the ImageNet mean/std.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import RegistryError
from harness.kit.hooked import HookedBackbone
from harness.kit.weights import (
    WeightSource,
    load_state_dict,
    load_strict,
    resolve_weights,
    weights_unavailable,
)
from harness.specs import Preprocess
from harness_cifar.specs import CIFAR_RESNET, CifarArgs

if TYPE_CHECKING:  # the network module (torch) is imported in build_module: planning needs none of it
    from torch import nn

CIFAR_32 = Preprocess(resize=32, crop=32, interpolation="bilinear")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: files under a weights root; the source repository also publishes 32/44/110 (not in ../shared)
DEFAULT_FILES = {20: "cifar10_resnet/resnet20_cifar10.safetensors", 56: "cifar10_resnet/resnet56_cifar10.safetensors"}


class CifarResNetBackbone(HookedBackbone):
    spec = CIFAR_RESNET
    args: CifarArgs
    #: CPU bf16 autocast measured 1.5x faster with tokens r 0.99989 vs fp32 (real weights; bench_extraction.py)
    cpu_bf16 = True

    @property
    def preprocess(self) -> Preprocess:
        return CIFAR_32

    def _source(self) -> WeightSource:
        return WeightSource(filename=DEFAULT_FILES.get(self.args.depth), sha256=self.ctx.entry.meta.get("sha256"))

    def _check(self) -> None:
        if self.args.depth < 8 or (self.args.depth - 2) % 6:
            raise RegistryError(f"{self.where('depth')}: CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110 …), "
                                f"not {self.args.depth}")
        if not self.ctx.random_init and not self.args.weights and self.args.depth not in DEFAULT_FILES:
            raise RegistryError(f"{self.where('weights')}: no default weights for depth {self.args.depth} "
                                f"(have {sorted(DEFAULT_FILES)}); set args.weights or use --random-init")

    def check_args(self) -> None:
        self._check()

    def weights_reason(self) -> str | None:
        return weights_unavailable(self.ctx.entry.name, self._source(), self.ctx.settings, self.args.weights)

    def build_module(self) -> nn.Module:
        from harness_cifar.resnet import CifarResNet

        self._check()
        net = CifarResNet(self.args.depth)
        if not self.ctx.random_init:
            name = self.ctx.entry.name
            path = resolve_weights(name, self._source(), self.ctx.settings, explicit=self.args.weights)
            load_strict(net, load_state_dict(path, name), name, path)
        return net

    def layer_modules(self) -> dict[str, str]:
        n = (self.args.depth - 2) // 6
        full = {"stem": "stem_act"}
        if self.args.layer_set == "stages":
            full.update({f"layer{s}": f"layer{s}" for s in (1, 2, 3)})
        else:
            full.update({f"layer{s}.{i}": f"layer{s}.{i}" for s in (1, 2, 3) for i in range(n)})
        return self.pick_layers(full, self.args.layers)

    @property
    def channels_last(self) -> bool:  # type: ignore[override]
        return self.args.channels_last
