"""Small on-disk datasets in the real layouts, written by tests (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from harness_datasets.synthetic import procedural_images
from PIL import Image

from harness.kit.scoring import rdm_from_features


def algonauts_folder(root: Path, n: int = 12, n_sub: int = 4, seed: int = 0) -> Path:
    """``images/*.jpg`` + ``rdms.npz`` like ../shared/data/cichy92, with RDMs built from pixel features."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    imgs = procedural_images(n, 48, seed)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(root / "images" / f"image_{i + 1:02d}.jpg", quality=95)
    base = rdm_from_features(imgs.reshape(n, -1).astype(np.float64))
    rdms = {}
    for roi in ("EVC", "IT"):
        subs = []
        for _ in range(n_sub):
            noise = rng.normal(0, 0.05, (n, n))
            d = base + (noise + noise.T) / 2
            np.fill_diagonal(d, 0)
            subs.append(d)
        rdms[roi] = np.stack(subs).astype(np.float32)
    np.savez(root / "rdms.npz", **rdms)
    return root
