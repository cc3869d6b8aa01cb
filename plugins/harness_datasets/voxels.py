"""Helpers every voxel loader shares: dropping unusable voxels *with a count*, never silently.

A voxel whose responses contain NaN/inf (a vertex outside the brain mask, a dead
channel) cannot be scored. Loaders drop it here and hand the count to
``VoxelTargets.n_excluded``, which the runner adds to the job's ``n_excluded`` column.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas loads with the data, not when a dataset is listed or checked
    import pandas as pd

log = logging.getLogger("harness.datasets")


def exclude_nonfinite(responses: np.ndarray, voxels: pd.DataFrame, repeats: np.ndarray | None, where: str,
                      *extra: np.ndarray | None) -> tuple:
    """Drop voxels (columns) with any non-finite response, or ±inf / all-NaN in a stimulus's repeats.

    Returns ``(responses, voxels, repeats, n_excluded, *extra)`` with the same voxels kept in
    every per-voxel array of ``extra`` (last axis = voxels; None passes through).
    """
    ok = np.isfinite(responses).all(0)
    if repeats is not None:
        ok &= ~np.isinf(repeats).any((0, 1))
        ok &= np.isfinite(repeats).any(1).all(0)
    n_excl = int((~ok).sum())
    if n_excl:
        log.warning("%s: excluded %d of %d voxels with non-finite responses", where, n_excl, len(ok))
    keep = np.flatnonzero(ok)
    out_extra = tuple(None if e is None else np.asarray(e)[..., keep] for e in extra)
    return (responses[:, keep], voxels.iloc[keep].reset_index(drop=True),
            None if repeats is None else repeats[:, :, keep], n_excl, *out_extra)


def nanmean_repeats(repeats: np.ndarray) -> np.ndarray:
    """stimuli × repeats × voxels → stimuli × voxels, NaN (no warning) where a stimulus has no valid repeat."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(repeats, axis=1)
