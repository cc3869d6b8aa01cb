"""Seeded resampling shared by the metrics: percentile bootstrap CIs and permutation p-values."""

from __future__ import annotations

import numpy as np


def percentile_ci(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap replicates (NaN ignored; None when none are finite).

    Right for smooth, nearly unbiased summaries (ROI mean/median of r, slopes, means of per-unit values):
    on simulated voxels its 95 % intervals cover the true ROI mean r at the nominal rate (tests).
    """
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None, None
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bc_ci(samples: np.ndarray, observed: float, level: float) -> tuple[float | None, float | None]:
    """Bias-corrected (BC) percentile interval of bootstrap replicates around the observed statistic.

    For squared correlations (the Algonauts 2019 R²): resampling noise inflates every replicate of a mean
    of r² near 0, so the plain percentile interval can miss the observed value entirely. BC (Efron 1987)
    shifts the percentiles by z0 = Φ⁻¹(share of replicates below the observed value). Not for medians:
    their lumpy bootstrap distribution misestimates z0 (95 % BC intervals of a voxel median covered 0.81
    in simulation, plain percentiles 0.98). NaN replicates are ignored; None when none are finite.
    """
    from scipy.stats import norm

    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0 or not np.isfinite(observed):
        return None, None
    frac = (np.sum(s < observed) + 0.5 * np.sum(s == observed)) / s.size
    frac = float(np.clip(frac, 0.5 / s.size, 1 - 0.5 / s.size))
    z0, za = norm.ppf(frac), norm.ppf((1 - level) / 2)
    lo, hi = np.percentile(s, [100 * norm.cdf(2 * z0 + za), 100 * norm.cdf(2 * z0 - za)])
    return float(lo), float(hi)


def bootstrap_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """``n_boot × n`` resamples with replacement of ``n`` items (stimuli, units or subjects)."""
    return rng.integers(0, n, size=(n_boot, n))


def permutation_p(null: np.ndarray, observed: float) -> float | None:
    """One-sided p = (1 + #{null ≥ observed}) / (1 + n): never 0, exact under exchangeability."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if null.size == 0 or not np.isfinite(observed):
        return None
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + null.size))


def _chunks(n_boot: int, n: int, budget: int = 2_000_000) -> list[int]:
    step = max(1, budget // max(n, 1))
    return [min(step, n_boot - i) for i in range(0, n_boot, step)]


def bootstrap_means(rng: np.random.Generator, values: np.ndarray, n_boot: int) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the mean of ``values``, drawn in memory-bounded chunks."""
    v = np.asarray(values, dtype=np.float64)
    return np.concatenate([v[bootstrap_indices(rng, v.size, k)].mean(1) for k in _chunks(n_boot, v.size)] or [np.empty(0)])


def bootstrap_lines(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, n_boot: int) -> tuple[np.ndarray, ...]:
    """Bootstrap replicates (pairs resampled) of a least-squares line: slope, intercept, R² arrays."""
    out: list[tuple[np.ndarray, ...]] = []
    for k in _chunks(n_boot, x.size):
        idx = bootstrap_indices(rng, x.size, k)
        bx, by = x[idx], y[idx]
        bxc, byc = bx - bx.mean(1, keepdims=True), by - by.mean(1, keepdims=True)
        sxx, syy, sxy = (bxc * bxc).sum(1), (byc * byc).sum(1), (bxc * byc).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(sxx > 0, sxy / sxx, np.nan)
            out.append((slope, by.mean(1) - slope * bx.mean(1), np.where(syy > 0, sxy**2 / (sxx * syy), 1.0)))
    if not out:
        return np.empty(0), np.empty(0), np.empty(0)
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))
