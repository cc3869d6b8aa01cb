"""Sinusoidal encoding of voxel coordinates: the input of the topological selector MLPs.

Why sinusoids: a small MLP on raw coordinates can only draw very smooth maps,
and on one-hot voxel ids none at all; sines and cosines over a band of
wavelengths let nearby voxels share selections while distinct regions (a
retinotopic map, a layer gradient) can still differ. Coordinates are scaled
isotropically (one span for every axis) so physical distances keep their meaning.
"""

from __future__ import annotations

import numpy as np


def sinusoidal_encoding(coords: np.ndarray, n_freq: int = 16, min_wavelength: float = 0.02,
                        max_wavelength: float = 4.0) -> np.ndarray:
    """``V × A`` coordinates → ``V × (A · 2 · n_freq)`` features.

    Coordinates are shifted to start at 0 and divided by the largest per-axis span;
    wavelengths are log-spaced between ``min_wavelength`` and ``max_wavelength`` of
    that span.
    """
    c = np.asarray(coords, np.float64)
    if c.ndim != 2:
        raise ValueError(f"coordinates must be voxels × axes, got shape {c.shape}")
    lo = c.min(0)
    span = float((c.max(0) - lo).max())
    u = (c - lo) / (span if span > 0 else 1.0)
    wavelengths = np.geomspace(min_wavelength, max_wavelength, n_freq)
    ang = 2 * np.pi * u[:, :, None] / wavelengths  # V×A×F
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=2).reshape(len(c), -1).astype(np.float32)
