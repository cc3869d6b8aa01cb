"""The optimisation settings of the trained token heads, apart from :mod:`harness.kit.training` (torch) so
that heads' argument schemas can be declared and validated without importing torch."""

from __future__ import annotations

from pydantic import Field

from harness.specs import PluginArgs


class TrainArgs(PluginArgs):
    """Optimisation settings shared by every trained token head."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    batch_size: int = Field(32, gt=0)
    #: passes over the training stimuli at most: the schedule is set in epochs so a small data set is not
    #: trained for hundreds of passes nor a large one cut off before it has seen every stimulus
    max_epochs: float = Field(150, gt=0)
    #: optional hard cap on optimiser steps (a schedule quoted in steps, e.g. the paper's)
    max_steps: int | None = Field(None, gt=0)
    #: validate every this many steps (None: once per epoch)
    eval_every: int | None = Field(None, gt=0)
    #: converged: stop after this many validations without an improvement of at least ``min_delta``
    patience: int = Field(30, gt=0)
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
    #: keep tokens on the device (float16) when they fit this many GiB and 60 % of free GPU memory
    #: (None: 60 % of free GPU memory on CUDA, 8 GiB on CPU); otherwise every batch is read from the cache
    preload_gib: float | None = Field(None, ge=0)
