"""A fixed set of random crops per image, and the backbone's stage outputs on them, cached by content.

The masks train for tens of epochs, but in ``mask_only`` mode the backbone is frozen:
recomputing it on every epoch spends nearly all of the time on identical work. Instead
each image gets ``n_crops`` crop windows drawn once (window 0 is the centre crop used for
prediction) and their stage outputs are computed once, average-pooled to at most
``grid × grid`` and stored in the content-addressed token cache; every epoch then picks one
cached window per image. Pooling the map to a grid before masking is exact for masks that
are constant over each grid cell followed by average pooling, which is what the
location mask is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.cache import TokenCache, TokenStore, token_key
from harness.contracts import Backbone, Stimuli
from harness.specs import Preprocess

#: bump when the crop bank changes numerically
BANK_VERSION = "1"
_INTERP = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC}


def crop_preprocess(pre: Preprocess, crop_fraction: float) -> Preprocess:
    """The backbone's input size and normalisation, with the crop covering ``crop_fraction`` of the shorter side."""
    return pre.model_copy(update={"resize": round(pre.crop / crop_fraction)})


def resized(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Shorter side scaled to ``pre.resize`` (never below the crop), ``H×W×3`` uint8."""
    img = img.convert("RGB")
    w, h = img.size
    scale = pre.resize / min(w, h)
    nw, nh = max(pre.crop, round(w * scale)), max(pre.crop, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), _INTERP[pre.interpolation])
    return np.asarray(img, dtype=np.uint8)


def crop_normalise(arr: np.ndarray, pre: Preprocess, fx: float, fy: float) -> np.ndarray:
    """Crop ``pre.crop`` pixels at relative offset (fx, fy) ∈ [0, 1]² (0.5, 0.5 = centre), normalise, ``3×S×S``."""
    h, w = arr.shape[:2]
    left, top = int((w - pre.crop) * fx), int((h - pre.crop) * fy)
    win = arr[top : top + pre.crop, left : left + pre.crop].astype(np.float32) / 255.0
    win = (win - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(win.transpose(2, 0, 1))


def crop_offsets(n_images: int, n_crops: int, seed: int) -> np.ndarray:
    """``n_images × n_crops × 2`` relative offsets; crop 0 of every image is the centre."""
    rng = np.random.default_rng([seed, 8747])
    off = rng.uniform(0.0, 1.0, (n_images, n_crops, 2))
    off[:, 0] = 0.5
    return off


def grid_cells(n: int, grid: int) -> int:
    """Cells along a side of ``n`` pixels: the largest divisor of ``n`` up to ``grid``, so cells tile the map
    exactly and the mean over cells is the map's mean; when only small divisors exist (e.g. a prime
    side), ``grid`` cells of adaptive pooling (slightly overlapping, so that mean is approximate)."""
    if n <= grid:
        return n
    d = max(k for k in range(1, grid + 1) if n % k == 0)
    return d if 2 * d > grid else grid


def pool_stage(local: torch.Tensor, grid: int) -> torch.Tensor:
    """Average-pool a ``B×C×H×W`` map to at most ``grid × grid`` cells (see :func:`grid_cells`)."""
    h, w = local.shape[-2:]
    gh, gw = grid_cells(h, grid), grid_cells(w, grid)
    if (gh, gw) == (h, w):
        return local
    return F.adaptive_avg_pool2d(local, (gh, gw))


@dataclass(frozen=True)
class StageBank:
    """Stage outputs of ``n_images × n_crops`` crops; row ``i * n_crops + k`` is crop k of image i."""

    store: TokenStore
    n_images: int
    n_crops: int
    grid: int

    @property
    def layers(self) -> tuple[str, ...]:
        return self.store.layers

    def rows(self, images: np.ndarray, crops: np.ndarray) -> np.ndarray:
        return np.asarray(images) * self.n_crops + np.asarray(crops)


def stage_bank(
    backbone: Backbone,
    stimuli: Stimuli,
    cache: TokenCache,
    *,
    n_crops: int,
    crop_fraction: float,
    grid: int,
    seed: int,
    device: str = "cpu",
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> StageBank:
    """Return the cached bank, computing it on a miss (memory bounded by one batch of crops)."""
    pre = crop_preprocess(backbone.preprocess, crop_fraction)
    offsets = crop_offsets(len(stimuli), n_crops, seed)
    key = token_key(
        purpose="stage_aggregation_crops",
        version=BANK_VERSION,
        weights=backbone.weights_digest(),
        preprocess=pre.model_dump(),
        layers=list(backbone.layers),
        stimuli=stimuli.digest,
        offsets=np.round(offsets, 6).tolist(),
        grid=grid,
    )
    n = len(stimuli) * n_crops
    hit = cache.open(key)
    if hit is None:
        backbone.to(device)
        meta = {"backbone": backbone.ctx.entry.name, "random_init": backbone.ctx.entry.random_init,
                "weights": backbone.weights_digest(), "stimuli": stimuli.digest, "precision": "fp32",
                "max_grid": grid, "preprocess": pre.model_dump(), "purpose": "stage_aggregation_crops",
                "n_crops": n_crops}
        rows = [(i, k) for i in range(len(stimuli)) for k in range(n_crops)]
        with cache.writer(key, backbone.layers, n, meta, "float16") as w, torch.inference_mode():
            arr: np.ndarray | None = None
            loaded = -1
            for start in range(0, n, batch_size):
                batch = []
                for i, k in rows[start : start + batch_size]:
                    if i != loaded:
                        arr, loaded = resized(stimuli.load(i), pre), i
                    assert arr is not None
                    batch.append(crop_normalise(arr, pre, *offsets[i, k]))
                x = torch.from_numpy(np.stack(batch)).to(device)
                for layer, t in backbone.tokens(x).items():
                    w.write(start, layer, pool_stage(t.local.float(), grid).cpu().numpy().astype(np.float16),
                            t.global_.float().cpu().numpy().astype(np.float16))
                if progress:
                    progress(min(start + batch_size, n), n)
        hit = cache.get(key)
        assert hit is not None
    return StageBank(store=hit, n_images=len(stimuli), n_crops=n_crops, grid=grid)
