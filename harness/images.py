"""Preprocessing as data: a :class:`~harness.specs.Preprocess` turns PIL images into a batch.

Done with PIL + numpy so the core needs no torchvision; a background thread
prepares the next batch while the network runs on the current one.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from harness.contracts import Stimuli
from harness.specs import Preprocess

_INTERP = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def crop_image(img: Image.Image, pre: Preprocess) -> Image.Image:
    """Resize the shorter side and centre-crop: the frame the network (and its token grid) sees."""
    img = img.convert("RGB")
    w, h = img.size
    scale = pre.resize / min(w, h)
    nw, nh = max(pre.crop, round(w * scale)), max(pre.crop, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), _INTERP[pre.interpolation])
    left, top = (nw - pre.crop) // 2, (nh - pre.crop) // 2
    return img.crop((left, top, left + pre.crop, top + pre.crop))


def preprocess_image(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Resize the shorter side, centre-crop, scale to [0, 1], normalise; returns ``3×crop×crop`` float32."""
    img = crop_image(img, pre)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _load_batch(stimuli: Stimuli, pre: Preprocess, idx: range) -> torch.Tensor:
    return torch.from_numpy(np.stack([preprocess_image(stimuli.load(i), pre) for i in idx]))


def iter_batches(stimuli: Stimuli, pre: Preprocess, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, batch)``; loading of batch k+1 overlaps the caller's work on batch k."""
    starts = list(range(0, len(stimuli), batch_size))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(_load_batch, stimuli, pre, range(0, min(batch_size, len(stimuli))))
        for k, s in enumerate(starts):
            batch = fut.result()
            if k + 1 < len(starts):
                n = starts[k + 1]
                fut = pool.submit(_load_batch, stimuli, pre, range(n, min(n + batch_size, len(stimuli))))
            yield s, batch
