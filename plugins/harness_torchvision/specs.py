"""What the torchvision backbone declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class TVArgs(PluginArgs):
    arch: str = "mobilenet_v2"
    #: weight variant (torchvision's enum name, or QNNPACK_DEQUANT for the shared MobileNetV2 file)
    tag: str | None = None
    #: explicit weights file (safetensors or a weights_only pickle); overrides the tag's source
    weights: str | None = None
    layer_set: str | None = None
    #: a subset of the layer set's names (kept in depth order)
    layers: tuple[str, ...] | None = None
    channels_last: bool | None = None


TORCHVISION = PluginSpec(
    id="torchvision",
    kind="backbone",
    version="2",
    summary="torchvision classification nets (MobileNetV2, AlexNet, ResNet-50) read at every stage",
    args=TVArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("torchvision",),
    extra="torchvision",
)
