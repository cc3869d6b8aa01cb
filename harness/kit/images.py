"""Preprocessing as data: a :class:`~harness.specs.Preprocess` turns PIL images into a batch.

Done with PIL + numpy so the core needs no torchvision; a background thread
prepares the next batch while the network runs on the current one. Split in two steps
on purpose: :func:`decode_batch` (decode, resize, crop: uint8, the costly part, cacheable
once per stimulus set and recipe) and :func:`normalise` (float scaling, cheap). The
float path is the same numpy expression whether the uint8 pixels come from PIL now or
from the decoded-stimulus cache, so both give bit-identical batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from harness.contracts import Stimuli
from harness.specs import Preprocess

_INTERP = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
T = TypeVar("T")


def resize_shorter(img: Image.Image, pre: Preprocess) -> Image.Image:
    """RGB, shorter side scaled to ``pre.resize`` (never below the crop), in uint8 with PIL as the nets were
    trained; shared by the centre crop below and the aggregation head's random crops."""
    img = img.convert("RGB")
    w, h = img.size
    scale = pre.resize / min(w, h)
    nw, nh = max(pre.crop, round(w * scale)), max(pre.crop, round(h * scale))
    return img.resize((nw, nh), _INTERP[pre.interpolation]) if (nw, nh) != (w, h) else img


def crop_image(img: Image.Image, pre: Preprocess) -> Image.Image:
    """Resize the shorter side and centre-crop: the frame the network (and its token grid) sees."""
    img = resize_shorter(img, pre)
    nw, nh = img.size
    left, top = (nw - pre.crop) // 2, (nh - pre.crop) // 2
    return img.crop((left, top, left + pre.crop, top + pre.crop))


def normalise(pixels: np.ndarray, pre: Preprocess, channels_last: bool = False) -> np.ndarray:
    """``…×H×W×3`` uint8 → ``…×3×H×W`` float32: scale to [0, 1], subtract ``mean``, divide by ``std``.

    Numpy's true division, in this order, is what every batch has always been computed with; torch's
    scalar division may multiply by the reciprocal instead, which changes last bits. The three steps run in
    place on one float32 copy, and the last one writes straight into the ``…×3×H×W`` layout: the same
    float32 operations on every element as three separate expressions, without their temporaries and the
    separate transposing copy. ``channels_last``: the result keeps the pixels' ``…×H×W×3`` memory order
    (a strided ``…×3×H×W`` view, torch's ``channels_last`` once wrapped), for networks that run in that
    layout, which would otherwise transpose the batch back.
    """
    arr = np.array(pixels, dtype=np.float32)  # always a copy: the steps below write in place
    np.divide(arr, 255.0, out=arr)
    np.subtract(arr, np.asarray(pre.mean, np.float32), out=arr)
    axes = (*range(arr.ndim - 3), arr.ndim - 1, arr.ndim - 3, arr.ndim - 2)
    std = np.asarray(pre.std, np.float32)
    if channels_last:
        np.divide(arr, std, out=arr)
        return arr.transpose(axes)
    out = np.empty(arr.transpose(axes).shape, np.float32)
    np.divide(arr.transpose(axes), std.reshape(3, 1, 1), out=out)
    return out


def preprocess_image(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Resize the shorter side, centre-crop, scale to [0, 1], normalise; returns ``3×crop×crop`` float32."""
    return normalise(np.asarray(crop_image(img, pre), dtype=np.uint8), pre)


def decode_batch(stimuli: Stimuli, pre: Preprocess, idx: range) -> np.ndarray:
    """Images ``idx`` decoded, resized and centre-cropped: ``B×crop×crop×3`` uint8."""
    return np.stack([np.asarray(crop_image(stimuli.load(i), pre), dtype=np.uint8) for i in idx])


def prefetched(make: Callable[[range], T], n: int, batch_size: int) -> Iterator[tuple[int, T]]:
    """Yield ``(start, make(range(start, start + batch_size)))`` over ``n`` rows; ``make`` for batch k+1
    runs in a background thread while the caller works on batch k."""
    starts = list(range(0, n, batch_size))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(make, range(0, min(batch_size, n)))
        for k, s in enumerate(starts):
            batch = fut.result()
            if k + 1 < len(starts):
                nxt = starts[k + 1]
                fut = pool.submit(make, range(nxt, min(nxt + batch_size, n)))
            yield s, batch


def iter_batches(stimuli: Stimuli, pre: Preprocess, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, batch)`` decoded now (no cache); loading of batch k+1 overlaps the caller's work on batch k."""
    return prefetched(lambda idx: torch.from_numpy(normalise(decode_batch(stimuli, pre, idx), pre)),
                      len(stimuli), batch_size)
