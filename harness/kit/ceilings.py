"""Noise ceilings shared by datasets and metrics: how well could a perfect model score, given the noise?

Two scales appear in the literature and both are kept explicit here:

* **R² scale** (``nc``): the fraction of a voxel's response variance that is stimulus-driven, i.e. the
  largest r² a model can reach against the repeat-averaged responses. NSD's ``NC = ncsnr² / (ncsnr² + 1/n)``
  (Allen et al. 2022) and the Spearman–Brown corrected split-half reliability both estimate it.
* **r scale** (``nc_r = sqrt(nc)``): the largest Pearson r, what ``VoxelTargets.noise_ceiling_r`` carries.

For RDMs the ceiling is a pair (lower, upper): each subject's RDM compared with the mean of the *other*
subjects' RDMs (lower) or of *all* subjects' (upper) — Nili et al. 2014, as in rsatoolbox.

Only numpy here: datasets import this module to attach ceilings when they load.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from harness.errors import DataError
from harness.kit.scoring import spearman_many

#: ``compare(vector, rows)``: correlation of one condensed RDM with each row of a ``S×P`` stack
RDMCompare = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- repeated presentations
def _check_repeats(repeats: np.ndarray) -> np.ndarray:
    r = np.asarray(repeats, dtype=np.float64)
    if r.ndim != 3:
        raise DataError(f"repeats must be stimuli × repeats × voxels (NaN for missing), got shape {r.shape}")
    if np.isinf(r).any():
        raise DataError("repeats contain ±inf; use NaN only for missing presentations")
    return r


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray:
    """Reliability of an average of ``factor`` times as many trials: k·r / (1 + (k − 1)·r)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)


def _nan_pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Pearson r using only rows where both columns are finite."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(0)
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(0) / n, b.sum(0) / n
        ac, bc = np.where(ok, a - ma, 0.0), np.where(ok, b - mb, 0.0)
        r = (ac * bc).sum(0) / np.sqrt((ac * ac).sum(0) * (bc * bc).sum(0))
    return np.where(n >= 3, r, np.nan)


def _balanced_splits(n_rep: int) -> list[np.ndarray]:
    """Every split of ``n_rep`` repeat slots into halves of ⌈n/2⌉ and ⌊n/2⌋, each once, as an interleaved order.

    The order lists half A and half B alternately (a0, b0, a1, b1, …), so assigning available repeats
    alternately — what :func:`split_half_reliability` does — reproduces the split exactly.
    """
    size_a = (n_rep + 1) // 2
    out = []
    for half in itertools.combinations(range(n_rep), size_a):
        if n_rep % 2 == 0 and 0 not in half:
            continue  # {A, B} and {B, A} are the same split
        other = [i for i in range(n_rep) if i not in half]
        order = [x for pair in itertools.zip_longest(half, other) for x in pair if x is not None]
        out.append(np.array(order))
    return out


def split_half_reliability(repeats: np.ndarray, n_splits: int = 100, seed: int = 0) -> np.ndarray:
    """Per voxel: mean split-half correlation over stimuli, Spearman–Brown corrected to the full average.

    A split orders the repeat slots (one order shared by all stimuli); each stimulus's *available*
    repeats alternate between the two halves in that order, so a stimulus with ≥ 2 repeats always
    lands in both halves. Without missing repeats and with no more distinct splits than
    ``n_splits``, every split is used exactly once (deterministic); otherwise ``n_splits`` random
    orders drawn with ``seed``. The result estimates the reliability of the repeat-averaged
    responses, i.e. the noise ceiling on the R² scale.
    """
    r = _check_repeats(repeats)
    n_rep = r.shape[1]
    if n_rep < 2:
        raise DataError("split-half reliability needs at least 2 repeats per stimulus")
    valid = np.isfinite(r)
    if valid.all() and math.comb(n_rep, (n_rep + 1) // 2) // (2 if n_rep % 2 == 0 else 1) <= n_splits:
        orders = _balanced_splits(n_rep)
    else:
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(n_rep) for _ in range(n_splits)]
    corrs = []
    for order in orders:
        x, ok = r[:, order, :], valid[:, order, :]
        pos = np.cumsum(ok, axis=1) - 1  # rank of each available repeat in this order
        in_a = ok & (pos % 2 == 0)
        in_b = ok & (pos % 2 == 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            half_a = np.where(in_a, x, 0.0).sum(1) / in_a.sum(1)
            half_b = np.where(in_b, x, 0.0).sum(1) / in_b.sum(1)
        corrs.append(_nan_pearson_columns(half_a, half_b))
    return spearman_brown(np.nanmean(np.stack(corrs), axis=0), 2.0)


def ncsnr(repeats: np.ndarray) -> np.ndarray:
    """NSD's noise-ceiling SNR per voxel: σ_signal / σ_noise.

    σ²_noise is the mean over stimuli of the across-repeat variance (ddof 1, stimuli with ≥ 2
    repeats); σ²_signal = max(0, total single-trial variance − σ²_noise). NSD z-scores betas so the
    total is 1; here the total is measured, which is the same thing for z-scored data.
    """
    r = _check_repeats(repeats)
    valid = np.isfinite(r)
    n = valid.sum(1)  # stimuli × voxels
    multi = n >= 2
    if not multi.any():
        raise DataError("ncsnr needs stimuli with at least 2 repeats")
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(valid, r, 0.0)
        mean_s = x.sum(1) / n  # stimuli × voxels
        ss_within = (np.where(valid, r - mean_s[:, None, :], 0.0) ** 2).sum(1)
        var_within = np.where(multi, ss_within / (n - 1), 0.0)
        noise_var = var_within.sum(0) / multi.sum(0)
        n_all = valid.sum((0, 1))
        grand = x.sum((0, 1)) / n_all
        total_var = (np.where(valid, r - grand, 0.0) ** 2).sum((0, 1)) / (n_all - 1)
        signal_var = np.clip(total_var - noise_var, 0.0, None)
        return np.sqrt(signal_var) / np.sqrt(noise_var)


def nc_from_ncsnr(snr: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """NC (R² scale, fraction) = ncsnr² / (ncsnr² + 1/n).

    ``n``: trials averaged per stimulus — a scalar, or per-stimulus counts (``stimuli`` or
    ``stimuli × voxels``), in which case 1/n is replaced by its mean over stimuli, as NSD does for
    images seen 1, 2 or 3 times.
    """
    s2 = np.asarray(snr, dtype=np.float64) ** 2
    n_arr = np.asarray(n, dtype=np.float64)
    if (n_arr <= 0).any():
        raise DataError("trial counts for the noise ceiling must be positive")
    inv_n = (1.0 / n_arr).mean(0) if n_arr.ndim else 1.0 / n_arr
    with np.errstate(invalid="ignore", divide="ignore"):
        return s2 / (s2 + inv_n)


def ncsnr_ceiling(repeats: np.ndarray, stimuli: np.ndarray | None = None) -> np.ndarray:
    """NC (R² scale) of the repeat-averaged responses of ``stimuli`` (default all), ncsnr from all stimuli."""
    r = _check_repeats(repeats)
    counts = np.isfinite(r).sum(1)  # stimuli × voxels
    if stimuli is not None:
        counts = counts[np.asarray(stimuli)]
    if (counts == 0).any():
        raise DataError(f"{int((counts == 0).any(1).sum())} scored stimuli have no valid repeat")
    return nc_from_ncsnr(ncsnr(r), counts)


def nc_to_r(nc: np.ndarray | float) -> np.ndarray:
    """R²-scale ceiling → r scale (negative reliabilities are 0: nothing is explainable)."""
    return np.sqrt(np.clip(np.asarray(nc, dtype=np.float64), 0.0, None))


def noise_normalised_r2(r: np.ndarray, nc: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Algonauts 2023: r < 0 → 0, then 100 · r² / NC, capped at 100; NaN where NC ≤ 0 (no signal)."""
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, None)
    nc = np.asarray(nc, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(nc > 0, 100.0 * r**2 / nc, np.nan)
    return np.minimum(out, cap)


# ----------------------------------------------------------------------------- RDMs
def pool_rdms(subj_u: np.ndarray, pool: Literal["mean", "rank"] = "mean") -> np.ndarray:
    """Average condensed RDMs; ``rank`` averages within-subject ranks (rsatoolbox's pooling for Spearman)."""
    from scipy import stats

    x = np.asarray(subj_u, dtype=np.float64)
    return (stats.rankdata(x, axis=-1) if pool == "rank" else x).mean(0)


def rdm_noise_ceiling(subj_u: np.ndarray, compare: RDMCompare = spearman_many, pool: Literal["mean", "rank"] = "mean",
                      squared: bool = True) -> tuple[float, float]:
    """(lower, upper) RDM noise ceiling, averaged over subjects.

    lower: each subject vs the pooled RDM of the others (leave-one-out); upper: vs the pool of all
    subjects, itself included. ``squared`` averages r² (the Algonauts 2019 scale), else r
    (rsatoolbox's ``boot_noise_ceiling`` scale).
    """
    x = np.asarray(subj_u, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise DataError(f"RDM noise ceiling needs ≥ 2 subjects' condensed RDMs (S×P), got shape {x.shape}")
    all_pool = pool_rdms(x, pool)
    lower = np.array([compare(pool_rdms(np.delete(x, s, 0), pool), x[s : s + 1])[0] for s in range(len(x))])
    upper = compare(all_pool, x)
    p = 2 if squared else 1
    return float(np.mean(lower**p)), float(np.mean(upper**p))


def noise_ceiling_rdm(subj_u: np.ndarray) -> tuple[float, float]:
    """The Algonauts 2019 (lower, upper) ceilings: squared Spearman r vs the mean of others / of all."""
    return rdm_noise_ceiling(subj_u, spearman_many, pool="mean", squared=True)
