"""Scoring functions shared by heads and metrics (kept apart from the estimators, himalaya-style)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of two ``n×V`` arrays (NaN where a column is constant)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    num = (a * b).sum(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def rdm_from_features(x: np.ndarray) -> np.ndarray:
    """1 − Pearson r between stimuli (rows): the RDM convention of Algonauts 2019."""
    x = np.asarray(x, np.float64)
    x = x - x.mean(1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    x = x / norm
    d = 1.0 - x @ x.T
    np.fill_diagonal(d, 0.0)
    return (d + d.T) / 2


def upper(rdm: np.ndarray) -> np.ndarray:
    """Condensed upper triangle (k=1) of one ``N×N`` or a stack ``S×N×N``."""
    n = rdm.shape[-1]
    iu = np.triu_indices(n, k=1)
    return rdm[..., iu[0], iu[1]]


def rank_rows(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties averaged, as Spearman needs)."""
    return stats.rankdata(x, axis=-1)


def spearman_many(model: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Spearman r of one condensed vector ``model`` against each row of ``targets`` (vectorised)."""
    rm = rank_rows(model)
    rt = rank_rows(targets)
    return pearson_columns(np.broadcast_to(rm, rt.shape).T, rt.T)
