"""What the stage-aggregation head declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.specs import (
    LAYER_WEIGHTS,
    LIVE_BACKBONE,
    MODEL_RDMS,
    RDMS,
    PluginArgs,
    PluginSpec,
)

MaskKind = Literal["stage", "channel", "location"]
Normalize = Literal["none", "l2"]
LossKind = Literal["l1", "mse"]


class AggregationArgs(PluginArgs):
    #: indices into the backbone's declared layers (negative count from the deepest); None: every stage
    stages: tuple[int, ...] | None = None
    #: mask resolutions: one scalar per stage, one per channel, one per channel and location
    masks: tuple[MaskKind, ...] = ("stage", "channel", "location")
    #: each masked stage output is average-pooled to pool×pool before concatenation (1: global average)
    pool: int = Field(1, ge=1)
    #: stage maps are average-pooled to at most grid×grid (the location mask's resolution)
    grid: int = Field(7, ge=1)
    #: "l2": centre each stage's pooled vector and scale it to unit norm before the stage scalar
    normalize: Normalize = "none"
    #: mask_only: frozen backbone (stage outputs cached once per crop); all: backbone fine-tuned with the masks
    mode: Literal["mask_only", "all"] = "mask_only"
    loss: LossKind = "l1"
    alpha: float = Field(0.25, ge=0)
    beta: float = Field(1.0, ge=0)
    lr: float = Field(0.01, gt=0)
    #: Adam learning rate of the backbone in mode "all"
    backbone_lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(40, ge=2)
    epochs: int = Field(20, ge=0, le=400)
    #: crops per image in the cached bank (crop 0 is the centre crop used for prediction);
    #: null: no bank, fresh random crops through the frozen net at every step (slow; the bank's baseline)
    n_crops: int | None = Field(4, ge=1)
    crop_fraction: float = Field(0.875, gt=0, le=1)
    #: Gaussian prior pulling every learned mask toward 1 (the untrained model): λ · mean (m − 1)²
    mask_decay: float = Field(0.0, ge=0)
    #: sparsity (Laplace) prior on the channel and location masks: λ · mean |m|
    mask_l1: float = Field(0.0, ge=0)
    #: fraction of each training set's images held out for early stopping (0: train all epochs on all images);
    #: each fit keeps its epoch with the lowest loss on the RDM among those images
    val_fraction: float = Field(0.0, ge=0, lt=1)
    #: subject folds (each subject is predicted by the encoder trained on the other folds); null: leave one out
    folds: int | None = Field(5, ge=2)
    #: independent trainings per fold (different crop draws and batch orders); their RDMs are averaged
    n_seeds: int = Field(1, ge=1)
    n_boot: int = Field(1000, ge=10)
    ci: float = Field(0.95, gt=0, lt=1)
    #: images per backbone forward while filling the crop bank
    extract_batch: int = Field(32, ge=1)
    #: ROI → ROI whose subjects (all of them) train its encoder, on that ROI's stimuli. With a dataset
    #: that joins image sets, {"118/IT": "92/IT"} scores transfer to unseen images and subjects.
    train_roi: dict[str, str] = Field(default_factory=dict)
    #: MEG ROIs that come with time-resolved RDMs (e.g. algonauts2019 ``meg_time_resolved: true``): each batch
    #: trains on one time point drawn from a Gaussian centred on the interval's middle with this SD (a fraction
    #: of the interval; Gaziv 2019). null: train on the interval's mean RDM.
    time_sampling_sd: float | None = Field(0.25, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AggregationArgs:
        if not self.masks:
            raise ValueError("masks must name at least one of stage, channel, location")
        if self.pool > self.grid:
            raise ValueError(f"pool ({self.pool}) cannot exceed grid ({self.grid})")
        if self.stages is not None and not self.stages:
            raise ValueError("stages must list at least one stage index (or be null for all)")
        return self


STAGE_AGGREGATION = PluginSpec(
    id="stage_aggregation",
    kind="head",
    version="2",  # 2: crop bank through the core extraction (no float16 flush of ~1e-8 stage maps)
    summary="learned masks over backbone stages trained on all subjects' RDMs (Gaziv, Algonauts 2019)",
    args=AggregationArgs,
    consumes=frozenset({LIVE_BACKBONE, RDMS}),
    produces=frozenset({LAYER_WEIGHTS, MODEL_RDMS}),
)
