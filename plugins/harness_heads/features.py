"""Turning cached tokens into design matrices (shared by the token heads)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.contracts import TokenStore
from harness_heads.specs import FeatureKind


def layer_matrix(store: TokenStore, layer: str, kind: FeatureKind, pool: int | None) -> np.ndarray:
    """``N × features`` float32 for one layer; local maps are average-pooled to at most ``pool×pool``."""
    parts = []
    if kind in ("local", "local+global"):
        loc = torch.from_numpy(np.array(store.local(layer), dtype=np.float32))
        if pool is not None and max(loc.shape[-2:]) > pool:
            loc = F.adaptive_avg_pool2d(loc, (min(pool, loc.shape[-2]), min(pool, loc.shape[-1])))
        parts.append(loc.reshape(len(loc), -1).numpy())
    if kind in ("global", "local+global"):
        parts.append(np.asarray(store.global_(layer), dtype=np.float32))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """z-score with training statistics, so one alpha grid suits every layer's scale."""
    mu = train.mean(0)
    sd = train.std(0)
    # constant columns → 1; the floor is relative, so a layer of tiny scale (random-init deep maps ~1e-8) is
    # standardised like any other rather than left unscaled
    sd[sd <= max(float(sd.max(initial=0.0)) * 1e-6, 1e-30)] = 1.0
    return [(a - mu) / sd for a in (train, *others)]
