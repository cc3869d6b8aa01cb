"""Fit the extraction batch to the memory of the device a worker landed on.

A cluster mixes cards (a 16 GB T4 beside an 80 GB H100, or half a card when two jobs share one), so one
``--batch-size`` is either wasteful or out of memory somewhere. On CUDA, with no explicit ``--batch-size``,
a worker measures the backbone's activation memory per image with a two-image probe forward pass
(``torch.cuda.max_memory_allocated`` above the weights, divided by 2: the fixed part is counted per image,
so the estimate errs large) and takes the largest power of two whose estimate fits in ``fraction`` of the
memory ``torch.cuda.mem_get_info`` reports free, between 1 and ``ceiling``. Batch size never changes the
cache key: tokens are per image.
"""

from __future__ import annotations

import contextlib

import torch

from harness.contracts import Backbone


def batch_for_memory(free_bytes: int, per_image_bytes: float, fraction: float = 0.6, ceiling: int = 256) -> int:
    """Largest power of two ``b ≤ ceiling`` with ``b × per_image_bytes ≤ fraction × free_bytes`` (at least 1)."""
    if per_image_bytes <= 0:
        return ceiling
    fit = int(fraction * free_bytes // per_image_bytes)
    b = 1
    while b * 2 <= min(fit, ceiling):
        b *= 2
    return b


def probe_bytes_per_image(backbone: Backbone, device: str, precision: str) -> float:
    """Peak CUDA memory of a two-image forward pass above what was allocated before it, per image."""
    backbone.to(device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    crop = backbone.preprocess.crop
    x = torch.zeros(2, 3, crop, crop, device=device)
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        toks = backbone.tokens(x)
        del toks
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    return peak / 2


def fitted_batch_size(backbone: Backbone, device: str, precision: str, ceiling: int = 256) -> int:
    """The extraction batch size for this backbone on this worker's device (see the module docstring)."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ValueError(f"batch size fitting needs a CUDA device, not {device!r}")
    per_image = probe_bytes_per_image(backbone, device, precision)
    free, _total = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, per_image, ceiling=ceiling)
