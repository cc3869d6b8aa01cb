"""The optimisation settings of the trained token heads, apart from :mod:`harness.kit.training` (torch) so
that heads' argument schemas can be declared and validated without importing torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harness.specs import PluginArgs


class TrainArgs(PluginArgs):
    """Optimisation settings shared by every trained token head."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    batch_size: int = Field(32, gt=0)
    #: passes over the training stimuli at most: the schedule is set in epochs so a small data set is not
    #: trained for hundreds of passes nor a large one cut off before it has seen every stimulus
    max_epochs: float = Field(90, gt=0)
    #: cap on optimiser steps: a larger data set converges in fewer passes (each pass has more steps), so the
    #: plan is ``min(max_epochs × steps per epoch, max_steps)``; None: no cap (the paper's 12 000-step entry sets it)
    max_steps: int | None = Field(400, gt=0)
    #: validate every this many steps (None: once per epoch)
    eval_every: int | None = Field(None, gt=0)
    #: converged: stop after this many validations without an improvement of at least ``min_delta``
    patience: int = Field(10, gt=0)
    #: validation-r gain that counts as an improvement for early stopping
    min_delta: float = Field(1e-3, ge=0)
    #: fraction of the training stimuli held out for early stopping and the soup
    val_fraction: float = Field(0.15, gt=0, lt=1)
    #: best validation checkpoints averaged into the Model Soup (1: best checkpoint only)
    soup: int = Field(5, ge=1)
    smooth_l1_beta: float = Field(0.1, gt=0)
    #: voxels per readout chunk: bounds memory at ``batch × bottleneck × chunk × layers`` floats
    voxel_chunk: int = Field(2048, gt=0)
    #: pool local tokens to at most grid × grid before training (None: the cached grid)
    grid: int | None = Field(None, gt=0)
    #: project each layer's standardised channels onto its top principal directions (fit stimuli only), at most
    #: this many per layer; "auto": one per ten fit stimuli, at least 16 (:func:`auto_pcs`); None: every channel.
    #: See :meth:`harness.kit.token_source.TokenSource._fit_pcs` for why
    channel_pcs: int | Literal["auto"] | None = Field(None)

    #: keep tokens on the device (float16) when they fit this many GiB and 60 % of free GPU memory
    #: (None: 60 % of free GPU memory on CUDA, 8 GiB on CPU); otherwise every batch is read from the cache
    preload_gib: float | None = Field(None, ge=0)

    @field_validator("channel_pcs")
    @classmethod
    def _positive(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v <= 0:
            raise ValueError("channel_pcs must be positive, 'auto' or null")
        return v


#: principal channels per layer under ``channel_pcs: auto``: one per this many fit stimuli …
PCS_PER_STIMULI = 10
#: … and never fewer than this
PCS_MIN = 16


def auto_pcs(setting: int | str | None, n_fit: int) -> int | None:
    """The principal channels kept per layer for ``n_fit`` fit stimuli.

    Why scale with the data: the layer-selection problem that the projection solves is one of capacity
    (a wide layer fits noise), so the fewer the stimuli the fewer channels; but a fixed small number loses
    planted signal spread over many channels once there are enough stimuli to use them (the recovery brain's
    1 000 stimuli on a random ResNet-18: layer accuracy 0.41 with 16 per layer, ≥ 0.8 with 64 or all).
    """
    if setting == "auto":
        return max(PCS_MIN, n_fit // PCS_PER_STIMULI)
    return setting if isinstance(setting, int) else None
