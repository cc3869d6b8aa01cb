"""Layer-selector summaries of the FactorTopy paper (Yang, Gee & Shi 2024, Table 2).

Every head that says which backbone layers a unit (voxel or ROI) reads from —
``HeadOutput.layer_weights``, units × layers, shallow → deep — can be asked two
questions: *how deep* does each unit read (the selector's centre of mass on a
[0, 1] depth axis) and *how sure* is the selector (1 − normalised entropy). The
hierarchy slope regresses depth on the ROI's ideal level across units: a
brain-like network reads early ROIs from early layers and late ROIs from late
ones, giving a positive slope. These functions are pure numpy so other
engineers' tests can import them without building a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from harness.errors import DataError

#: the FactorTopy ordering of the NSD streams ROIs: V1 < V2&V3 < OPA < EBA (datasets may carry their own)
DEFAULT_ROI_LEVELS: dict[str, float] = {"V1": 0.0, "V2": 1.0, "V3": 1.0, "V2&V3": 1.0, "V2V3": 1.0,
                                        "OPA": 2.0, "EBA": 3.0}


class LineFit(NamedTuple):
    slope: float
    intercept: float
    r2: float


def layer_depths(n_layers: int) -> np.ndarray:
    """Layer l of L sits at depth l / (L − 1) in [0, 1]; a single layer sits at 0."""
    if n_layers < 1:
        raise DataError("layer weights have no layers")
    return np.arange(n_layers, dtype=np.float64) / max(n_layers - 1, 1)


def _weights(layer_weights: np.ndarray) -> np.ndarray:
    w = np.asarray(layer_weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] < 1:
        raise DataError(f"layer weights must be units × layers, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError("layer weights must be finite and non-negative")
    tot = w.sum(1, keepdims=True)
    if (tot <= 0).any():
        raise DataError(f"{int((tot <= 0).sum())} unit(s) have all-zero layer weights")
    return w / tot  # rows sum to 1 even if a head hands over unnormalised softmax outputs


def centre_of_mass(layer_weights: np.ndarray) -> np.ndarray:
    """Per unit: Σ_l w_l · l / (L − 1), the selector's mean depth in [0, 1]."""
    w = _weights(layer_weights)
    return w @ layer_depths(w.shape[1])


def selector_confidence(layer_weights: np.ndarray) -> np.ndarray:
    """Per unit: 1 − H(w) / log L (1 = one layer, 0 = uniform); a one-layer backbone is fully confident."""
    w = _weights(layer_weights)
    n = w.shape[1]
    if n == 1:
        return np.ones(len(w))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(w > 0, w * np.log(w), 0.0).sum(1)
    return 1.0 - h / np.log(n)


def unit_levels(unit_rois: Sequence[str], roi_levels: Mapping[str, float]) -> np.ndarray:
    """Ideal level of each unit's ROI; NaN for ROIs without a level (left out of the fit, never guessed)."""
    return np.array([float(roi_levels[r]) if r in roi_levels else np.nan for r in unit_rois], dtype=np.float64)


def normalise_levels(levels: np.ndarray) -> np.ndarray:
    """Map the finite levels onto [0, 1] so a perfect layer ↔ ROI alignment has slope 1 whatever the ROI count."""
    lv = np.asarray(levels, dtype=np.float64)
    fin = lv[np.isfinite(lv)]
    if fin.size == 0 or fin.max() == fin.min():
        raise DataError("hierarchy slope needs ROIs at two or more distinct levels")
    return (lv - fin.min()) / (fin.max() - fin.min())


def fit_line(x: np.ndarray, y: np.ndarray) -> LineFit:
    """Least-squares y = slope · x + intercept with its R² (the squared Pearson r of x and y)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        raise DataError("a line fit needs two or more units at distinct levels")
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else 1.0  # every unit at its own line: a perfect (flat) fit
    return LineFit(slope, float(y.mean() - slope * x.mean()), float(r2))


def hierarchy_slope(layer_weights: np.ndarray, levels: np.ndarray | Sequence[float], normalise: bool = True) -> LineFit:
    """Slope, intercept and R² of the per-unit centre of mass regressed on the units' ROI levels.

    ``levels`` has one ideal level per unit (NaN units are left out). With
    ``normalise`` the levels are first mapped to [0, 1], so an ideal network
    (lowest ROI reads layer 0, highest ROI the last layer) has slope 1, intercept 0.
    """
    com = centre_of_mass(layer_weights)
    lv = np.asarray(levels, dtype=np.float64)
    if lv.shape != com.shape:
        raise DataError(f"{lv.size} levels for {com.size} units")
    if normalise:
        lv = normalise_levels(lv)
    return fit_line(lv, com)


def hierarchy_slope_grouped(com: np.ndarray, levels: np.ndarray, groups: Sequence[str]) -> tuple[float, dict[str, float], float]:
    """One slope shared by all groups (e.g. subjects) with an intercept per group, and the pooled R².

    The within-group (fixed-effects) estimator: centre x and y inside each group, fit one slope.
    """
    com = np.asarray(com, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    g = np.asarray(groups).astype(str)
    ok = np.isfinite(com) & np.isfinite(lv)
    com, lv, g = com[ok], lv[ok], g[ok]
    xc, yc = lv.copy(), com.copy()
    for k in np.unique(g):
        m = g == k
        xc[m] -= lv[m].mean()
        yc[m] -= com[m].mean()
    sxx = float(xc @ xc)
    if sxx == 0:
        raise DataError("a grouped line fit needs units at distinct levels inside some group")
    slope = float(xc @ yc) / sxx
    intercepts = {str(k): float(com[g == k].mean() - slope * lv[g == k].mean()) for k in np.unique(g)}
    resid = com - slope * lv - np.array([intercepts[k] for k in g])
    tot = float(((com - com.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tot if tot > 0 else 1.0
    return slope, intercepts, r2
