"""What the first-party heads declare: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.kit.train_args import TrainArgs
from harness.specs import (
    LAYER_WEIGHTS,
    MODEL_RDMS,
    RDMS,
    TOKENS,
    VOXEL_PREDICTIONS,
    VOXELS,
    PluginArgs,
    PluginSpec,
)

FeatureKind = Literal["local", "global", "local+global"]


class RidgeArgs(PluginArgs):
    alphas: tuple[float, ...] = tuple(10.0 ** e for e in range(-1, 7))  #: 0.1 … 1e6, as np.logspace(-1, 6, 8)
    features: FeatureKind = "local+global"
    #: local maps are pooled to at most pool×pool before flattening
    pool: int = 6
    layer_mode: Literal["best", "concat"] = "best"
    val_fraction: float = 0.2
    backend: str = "auto"


RIDGE = PluginSpec(
    id="ridge",
    kind="head",
    version="1",
    summary="closed-form ridge per layer, alpha per voxel by LOO, best layer per voxel on validation",
    args=RidgeArgs,
    consumes=frozenset({TOKENS, VOXELS}),
    produces=frozenset({LAYER_WEIGHTS, VOXEL_PREDICTIONS}),
)


class RSAArgs(PluginArgs):
    features: FeatureKind = "local"
    #: pool local maps to at most pool×pool (None: the cached grid)
    pool: int | None = None


RSA = PluginSpec(
    id="rsa",
    kind="head",
    version="1",
    summary="layer-wise RSA, best layer per ROI chosen leave-one-subject-out",
    args=RSAArgs,
    consumes=frozenset({RDMS, TOKENS}),
    produces=frozenset({LAYER_WEIGHTS, MODEL_RDMS}),
)


class ClassTokenArgs(TrainArgs):
    #: as FactorTopy's defaults (same bottleneck and channel PCs): Table 3 compares readouts, not capacities
    bottleneck: int = Field(32, gt=0)
    channel_pcs: int | Literal["auto"] | None = "auto"


class PatchTokenArgs(TrainArgs):
    bottleneck: int = Field(32, gt=0)
    channel_pcs: int | Literal["auto"] | None = "auto"
    #: hidden width of each layer's compression MLP
    hidden: int = Field(128, gt=0)
    grid: int | None = Field(8, gt=0)


CLASSTOKEN = PluginSpec(
    id="classtoken",
    kind="head",
    version="2",
    summary="classToken baseline (FactorTopy Table 3): per-layer linear map of the global token, layer average, "
            "linear readout",
    args=ClassTokenArgs,
    consumes=frozenset({TOKENS, VOXELS}),
    produces=frozenset({VOXEL_PREDICTIONS}),
)


PATCHTOKEN = PluginSpec(
    id="patchtoken",
    kind="head",
    version="2",
    summary="patchToken baseline (FactorTopy Table 3): per-layer MLP on flattened local tokens, layer average, "
            "linear readout",
    args=PatchTokenArgs,
    consumes=frozenset({TOKENS, VOXELS}),
    produces=frozenset({VOXEL_PREDICTIONS}),
)


class GNetArgs(TrainArgs):
    bottleneck: int = Field(64, gt=0)
    #: the fields' learning rate as a multiple of lr: a softmax field starting uniform sharpens slowly otherwise
    field_lr: float = Field(10.0, gt=0)
    #: token maps pooled to at most grid × grid: the fields have voxels × layers × grid² parameters
    grid: int | None = Field(16, gt=0)


GNET = PluginSpec(
    id="gnet",
    kind="head",
    version="2",
    summary="GNet-style baseline: per-voxel, per-layer learned spatial pooling fields over aligned local tokens",
    args=GNetArgs,
    consumes=frozenset({TOKENS, VOXELS}),
    produces=frozenset({LAYER_WEIGHTS, VOXEL_PREDICTIONS}),
)
