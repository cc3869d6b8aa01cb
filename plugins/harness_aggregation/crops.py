"""A fixed set of random crops per image, and the backbone's stage outputs on them, cached by content.

The masks train for tens of epochs, but in ``mask_only`` mode the backbone is frozen:
recomputing it on every epoch spends nearly all of the time on identical work. Instead
each image gets ``n_crops`` crop windows drawn once (window 0 is the centre crop used for
prediction) and their stage outputs are computed once — by the core's extraction, through
:class:`CropView` — average-pooled to at most ``grid × grid`` and stored in the
content-addressed token cache; every epoch then picks one
cached window per image. Pooling the map to a grid before masking is exact for masks that
are constant over each grid cell followed by average pooling, which is what the
location mask is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from harness.contracts import Stimuli, TokenStore, View
from harness.kit.images import resize_shorter
from harness.specs import Preprocess

#: bump when the crop bank changes numerically (2: extracted by the core, float16 only where the range fits)
BANK_VERSION = "2"
def crop_preprocess(pre: Preprocess, crop_fraction: float) -> Preprocess:
    """The backbone's input size and normalisation, with the crop covering ``crop_fraction`` of the shorter side."""
    return pre.model_copy(update={"resize": round(pre.crop / crop_fraction)})


def resized(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Shorter side scaled to ``pre.resize`` (never below the crop), ``H×W×3`` uint8."""
    return np.asarray(resize_shorter(img, pre), dtype=np.uint8)


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


class CropView(View):
    """``n_crops`` windows per image at fixed offsets (window 0 the centre), stage maps pooled to ``grid``."""

    def __init__(self, n_images: int, n_crops: int, crop_fraction: float, grid: int, seed: int) -> None:
        self.n_crops, self.crop_fraction, self.grid = n_crops, crop_fraction, grid
        self.offsets = crop_offsets(n_images, n_crops, seed)

    def key(self) -> dict[str, Any]:
        return {"purpose": "stage_aggregation_crops", "version": BANK_VERSION, "crop_fraction": self.crop_fraction,
                "offsets": np.round(self.offsets, 6).tolist(), "grid": self.grid}

    def meta(self) -> dict[str, Any]:
        return {"purpose": "stage_aggregation_crops", "n_crops": self.n_crops, "max_grid": self.grid}

    def n_rows(self, n_stimuli: int) -> int:
        return n_stimuli * self.n_crops

    def batches(self, stimuli: Stimuli, preprocess: Preprocess, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Each image is decoded and resized once for all its crops (memory bounded by one batch)."""
        pre = crop_preprocess(preprocess, self.crop_fraction)
        rows = [(i, k) for i in range(len(stimuli)) for k in range(self.n_crops)]
        arr, loaded = np.zeros((0, 0, 3), np.uint8), -1
        for start in range(0, len(rows), batch_size):
            batch = []
            for i, k in rows[start : start + batch_size]:
                if i != loaded:
                    arr, loaded = resized(stimuli.load(i), pre), i
                batch.append(crop_normalise(arr, pre, *self.offsets[i, k]))
            yield start, torch.from_numpy(np.stack(batch))

    def pool(self, local: torch.Tensor) -> torch.Tensor:
        return pool_stage(local, self.grid)


ViewTokens = Callable[[View, int, Callable[[int, int], None] | None], TokenStore]


def stage_bank(
    view_tokens: ViewTokens,
    n_images: int,
    *,
    n_crops: int,
    crop_fraction: float,
    grid: int,
    seed: int,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> StageBank:
    """The cached bank through the core's extraction (``HeadInput.view_tokens``), computed on a miss.

    Stored float16 only where the stage's range fits (a random-init net's deep maps near 1e-8
    stay float32 instead of flushing to zero); an overflow is an error, not ``inf``.
    """
    store = view_tokens(CropView(n_images, n_crops, crop_fraction, grid, seed), batch_size, progress)
    return StageBank(store=store, n_images=n_images, n_crops=n_crops, grid=grid)
