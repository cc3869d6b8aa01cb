"""torchvision backbones, tapped at the end of every stage.

Weights resolve through :func:`harness.weights.resolve_weights` (explicit path →
weights roots → hub caches → one clear error). Only safetensors are read here.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from harness.errors import WeightsMissingError
from harness.weights import WeightSource, resolve_weights
from harness.hooked import HookedBackbone
from harness.hookspecs import hookimpl
from harness.specs import IMAGES, TOKENS, PluginArgs, PluginSpec, Preprocess

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
IMAGENET = Preprocess(resize=256, crop=224, interpolation="bilinear")


class TVArgs(PluginArgs):
    arch: str = "mobilenet_v2"
    #: explicit safetensors path; default: mobilenet_v2_imagenet/… under the weights root
    weights: str | None = None


_DEFAULT_FILES = {"mobilenet_v2": "mobilenet_v2_imagenet/mobilenet_v2_torchvision_dequant_fusedbn.safetensors"}
_STAGES = {"mobilenet_v2": MOBILENET_V2_STAGES}


class TorchvisionBackbone(HookedBackbone):
    spec = PluginSpec(
        id="torchvision",
        kind="backbone",
        version="1",
        summary="torchvision classification nets (MobileNetV2) read at every stage",
        args=TVArgs,
        consumes=frozenset({IMAGES}),
        produces=frozenset({TOKENS}),
        requires=("torchvision",),
        extra="torchvision",
    )
    args: TVArgs

    @property
    def preprocess(self) -> Preprocess:
        return IMAGENET

    def layer_modules(self) -> dict[str, str]:
        return _STAGES[self.args.arch]

    def _weights_file(self) -> Path:
        rel = _DEFAULT_FILES.get(self.args.arch)
        if rel is None and not self.args.weights:
            raise WeightsMissingError(f"backbone {self.ctx.entry.name!r}: no default weights for {self.args.arch}; set args.weights")
        return resolve_weights(self.ctx.entry.name, WeightSource(filename=rel), self.ctx.settings, explicit=self.args.weights)

    def unavailable_reason(self) -> str | None:
        if self.args.arch not in _STAGES:
            return f"torchvision arch {self.args.arch!r} has no stage map here (known: {sorted(_STAGES)})"
        if self.ctx.random_init:
            return None
        try:
            self._weights_file()
        except WeightsMissingError as exc:
            return str(exc)
        return None

    def build_module(self) -> nn.Module:
        import torchvision
        from safetensors.torch import load_file

        net = getattr(torchvision.models, self.args.arch)(weights=None)
        if not self.ctx.random_init:
            net.load_state_dict(load_file(str(self._weights_file())), strict=True)
        return net


@hookimpl
def harness_plugins() -> list[type]:
    return [TorchvisionBackbone]
