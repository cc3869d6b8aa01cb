"""What the CIFAR ResNets declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Literal

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class CifarArgs(PluginArgs):
    depth: int = 20
    #: explicit weights file (safetensors, or a weights_only pickle with the module. prefix removed)
    weights: str | None = None
    layer_set: Literal["stages", "blocks"] = "stages"
    #: a subset of the layer set's names (kept in depth order)
    layers: tuple[str, ...] | None = None
    #: measured faster on CPU, as for the other CNN families (benchmarks/bench_extraction.py)
    channels_last: bool = True


CIFAR_RESNET = PluginSpec(
    id="cifar_resnet",
    kind="backbone",
    version="1",
    summary="CIFAR-10 ResNet-20/56 (He et al. 2016, option A), 32×32 input, stem + 3 stages or every block",
    args=CifarArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
)
