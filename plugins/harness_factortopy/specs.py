"""What the FactorTopy head declares: argument schemas and specs.

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
    TOKENS,
    VOXEL_PREDICTIONS,
    VOXELS,
    PluginSpec,
)

LayerMode = Literal["learned", "uniform"]
SpaceMode = Literal["learned", "centre", "mean"]
ScaleMode = Literal["learned", "fixed"]


class FactorTopyArgs(TrainArgs):
    #: the paper's 128 is sized for 12 ViT layers and ~9 000 NSD stimuli; with a few hundred training stimuli a
    #: 32-channel bottleneck fits at least as well (old default brain: test r 0.518 at 32 in 164 steps vs 0.499 at
    #: 128 in 428) at a third to a quarter of the time per step
    bottleneck: int = Field(32, gt=0)
    #: principal channels kept per layer (see TrainArgs.channel_pcs; "auto": 16 on the default synthetic brain's
    #: 153 fit stimuli): layers compete on content, not on width
    channel_pcs: int | Literal["auto"] | None = "auto"
    #: local tokens are average-pooled to at most grid × grid, as the paper's code resizes them to 8 × 8:
    #: coarse cells give the space selector's bilinear gradient a wide enough basin to find a voxel's location
    grid: int | None = Field(8, gt=0)
    layer_selection: LayerMode = "learned"
    #: learned: sample local tokens at a learned point; centre: at the image centre; mean: global average pool
    space_selection: SpaceMode = "learned"
    #: learned: per-voxel local/global mix; fixed: an even mix for every voxel
    scale_selection: ScaleMode = "learned"
    #: coords: selectors from MLPs of voxel x, y, z; free: per-voxel parameters; auto: coords when the table has them
    topology: Literal["auto", "coords", "free"] = "auto"
    #: learning-rate multiplier of free per-voxel selectors (topology "free"; no effect on the coordinate MLPs)
    free_selector_lr: float = Field(30.0, gt=0)
    #: learning-rate multiplier of the per-voxel channel selector (the readout over the bottleneck), in every
    #: topology: like a free selector logit, each of its entries moves by about lr per Adam step, so at lr 1e-3
    #: a few-hundred-step fit leaves it near its random start. Measured on the channel-clustering test brain
    #: (benchmarks/analysis_cluster_ari.py, 600 steps, brain seeds 3–9): channel-cluster ARI rises from
    #: 0.43–0.75 at 1 to 0.85–1.0 at 10, with the prediction's r against the planted signal not lower.
    readout_lr: float = Field(1.0, gt=0)
    #: points each voxel samples (features averaged over them)
    space_samples: int = Field(1, ge=1)
    entropy_weight: float = Field(0.1, ge=0)
    #: share of the planned fit (max_epochs, capped by max_steps) over which the entropy weight decays linearly
    #: to 0: set as a share, the decay ends inside the fit whatever its length, and the fit runs on unregularised
    #: for the rest, while the selectors sharpen (early stopping waits for the decay's end)
    entropy_decay: float = Field(0.5, ge=0, le=1)
    #: the weight the decay ends at and keeps for the rest of the fit; negative: the regulariser rewards low
    #: entropy, sharpening the layer selector once the channel alignment has been learned on soft selections
    entropy_final: float = -0.05
    #: epochs over which it decays instead, when given
    entropy_decay_epochs: float | None = Field(None, ge=0)
    #: steps over which it decays instead, when given (the paper: 6 000); wins over epochs
    entropy_decay_steps: int | None = Field(None, ge=0)
    mlp_hidden: int = Field(128, gt=0)
    pe_features: int = Field(16, gt=0)
    pe_min_wavelength: float = Field(0.02, gt=0)
    pe_max_wavelength: float = Field(4.0, gt=0)


FACTORTOPY = PluginSpec(
    id="factortopy",
    kind="head",
    version="2",
    summary="FactorTopy (Yang, Gee & Shi 2024): topological layer/space/scale/channel selectors on cached tokens",
    args=FactorTopyArgs,
    consumes=frozenset({TOKENS, VOXELS}),
    produces=frozenset({LAYER_WEIGHTS, VOXEL_PREDICTIONS}),
)
