"""Confidence intervals for stage weights: across channels, across folds, across seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def channel_bootstrap_ci(per_channel: Sequence[np.ndarray], n_boot: int, level: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample each stage's channels with replacement and recompute the stage shares: does the weight rest on a few channels?"""
    rng = np.random.default_rng([seed, 2])
    totals = np.stack([pc[rng.integers(0, len(pc), (n_boot, len(pc)))].sum(1) for pc in per_channel], axis=1)
    shares = totals / np.maximum(totals.sum(1, keepdims=True), 1e-12)
    lo, hi = np.percentile(shares, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def t_ci(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """t-interval of the mean over independent replicates (rows), e.g. seeds; NaN with fewer than 2."""
    values = np.asarray(values, np.float64)
    n = len(values)
    if n < 2:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(0, ddof=1) / np.sqrt(n)
    m = values.mean(0)
    return m - half, m + half


def jackknife_ci(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Fits that each leave one group of subjects out are delete-a-group jackknife replicates.

    SE = sqrt((k−1)/k · Σ(θᵢ − θ̄)²) over the k fits (leave-one-subject-out: k = subjects);
    the interval is θ̄ ± t_{k−1} · SE.
    """
    values = np.asarray(values, np.float64)
    n = len(values)
    if n < 2:
        nan = np.full(values.shape[1:], np.nan)
        return nan, nan
    m = values.mean(0)
    se = np.sqrt((n - 1) / n * ((values - m) ** 2).sum(0))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    return m - half, m + half
