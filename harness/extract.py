"""Batched, streamed token extraction into the cache (memory bounded by one batch)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.cache import DecodedCache, TokenCache, decoded_key, token_key
from harness.contracts import Backbone, Stimuli, TokenStore, View
from harness.errors import HarnessError
from harness.kit.images import decode_batch, normalise, prefetched
from harness.precision import resolve_precision  # noqa: F401  (re-exported: callers import it from here)
from harness.specs import Preprocess


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda requested but torch sees no CUDA device")
    return device


def _cap_grid(local: torch.Tensor, max_grid: int) -> torch.Tensor:
    h, w = local.shape[-2:]
    if max(h, w) <= max_grid:
        return local
    return F.adaptive_avg_pool2d(local, (min(h, max_grid), min(w, max_grid)))


#: float16 keeps ~3 significant digits from 6e-5 (smallest normal) to 65504. A layer whose first batch peaks
#: outside [FP16_MIN_PEAK, FP16_MAX_PEAK] is stored in float32 instead: a random-init MobileNetV2's deepest
#: maps peak near 3e-8 and would be stored as exact zeros; the upper bound leaves 32x headroom for later batches.
FP16_MIN_PEAK, FP16_MAX_PEAK = 0.1, 2048.0


FP16_MAX = 65504.0


def _peak(x: torch.Tensor) -> float:
    """max |x| in one vectorised pass (aminmax is ~3x faster than abs().amax() and ~9x than isfinite on CPU)."""
    if not x.numel():
        return 0.0
    lo, hi = torch.aminmax(x.detach())
    return max(-float(lo), float(hi))


def stored(x32: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """``x32`` cast to ``dtype`` in contiguous (NCHW) layout, and the peak ``max |x32|`` when it may exceed float16's
    range (else 0.0): the overflow guard, in one pass over the cast result instead of one over the float32 input.

    Why: channels-last CNN maps made the guard's ``aminmax`` over the strided float32 map and the transposing cast
    two slow passes (2-10x a contiguous pass). The cast result answers the guard exactly: float16 rounds
    monotonically, so every ``|x32| > 65504`` becomes 65504 or ``inf`` — a cast peak below 65504 proves none
    exceeded it, and only a cast peak at 65504, ``inf`` or NaN (rare) costs the exact float32 pass.
    """
    out = x32.to(dtype, memory_format=torch.contiguous_format)
    if dtype != torch.float16 or not out.numel():
        return out, 0.0
    lo, hi = torch.aminmax(out)
    if max(-float(lo), float(hi)) < FP16_MAX:  # NaN compares False: checked exactly below
        return out, 0.0
    return out, _peak(x32)


def storage_dtype(first_batch: torch.Tensor, requested: torch.dtype) -> torch.dtype:
    """The dtype a layer is stored in: the requested one unless it is float16 and the values do not fit it."""
    if requested != torch.float16:
        return requested
    if not first_batch.numel():
        return requested
    return requested if FP16_MIN_PEAK <= _peak(first_batch) <= FP16_MAX_PEAK else torch.float32


def tokens_key(backbone: Backbone, stimuli: Stimuli, precision: str, max_grid: int) -> str:
    return token_key(
        weights=backbone.weights_digest(),
        preprocess=backbone.preprocess.model_dump(),
        layers=list(backbone.layers),
        stimuli=stimuli.digest,
        precision=precision,
        max_grid=max_grid,
    )


def stimulus_batches(
    stimuli: Stimuli, pre: Preprocess, batch_size: int, decoded: DecodedCache, channels_last: bool = False
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, normalised batch)`` through the decoded-stimulus cache.

    Every backbone with the same decode recipe (resize, crop, interpolation) sees the same uint8 pixels,
    and decoding + resizing them costs as much as a small net's forward. So the first backbone decodes
    (in the background thread, overlapped with its forward, as before) and writes the pixels to a cache
    entry; later backbones read row slices of its memory map and only normalise. The batches are
    bit-identical either way (:func:`~harness.kit.images.normalise` on the same uint8 pixels). ``channels_last``
    batches keep the pixels' memory order (same values) for backbones that run in it.
    """
    n = len(stimuli)
    if not n:
        return
    key = decoded_key(stimuli.digest, pre.decode_recipe())
    hit = decoded.open(key)  # checksummed like tokens: a damaged entry is quarantined and decoded again
    if hit is not None:
        pixels = hit.pixels()
        if pixels.shape != (n, pre.crop, pre.crop, 3):
            raise HarnessError(f"decoded-stimulus cache entry {hit.path}: pixels.npy is {pixels.shape}, "
                               f"expected {(n, pre.crop, pre.crop, 3)}; remove it with `harness cache clear {key[:12]}`")
        yield from prefetched(lambda idx: torch.from_numpy(normalise(pixels[idx.start : idx.stop], pre, channels_last)),
                              n, batch_size)
        return
    meta = {"stimuli": stimuli.digest, **pre.decode_recipe()}
    with decoded.writer(key, (n, pre.crop, pre.crop, 3), meta) as rows:
        for start, (raw, batch) in prefetched(lambda idx: _decoded(stimuli, pre, idx, channels_last), n, batch_size):
            rows.write_rows(start, raw)
            yield start, batch


def _decoded(stimuli: Stimuli, pre: Preprocess, idx: range, channels_last: bool) -> tuple[np.ndarray, torch.Tensor]:
    raw = decode_batch(stimuli, pre, idx)
    return raw, torch.from_numpy(normalise(raw, pre, channels_last))


def ensure_tokens(
    backbone: Backbone,
    stimuli: Stimuli,
    cache: TokenCache,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    precision: str = "fp32",
    max_grid: int = 32,
    store_dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
) -> TokenStore:
    """Return cached tokens, extracting them first on a miss.

    ``precision`` is ``fp32`` or ``bf16`` (autocast); it is part of the key because
    it changes the numbers. ``max_grid`` average-pools local maps larger than it.
    ``store_dtype`` float16 halves the cache; layers whose range float16 cannot hold
    are kept in float32 (see :func:`storage_dtype`), and a later batch that overflows
    a float16 layer is an error rather than a silent ``inf``.
    """
    key = tokens_key(backbone, stimuli, precision, max_grid)
    hit = cache.open(key)  # a damaged entry is quarantined and reads as a miss: extracted again below
    if hit is not None:
        if progress:
            progress(len(stimuli), len(stimuli))
        return hit
    meta = {
        "backbone": backbone.ctx.entry.name,
        "random_init": backbone.ctx.entry.random_init,
        "weights": backbone.weights_digest(),
        "stimuli": stimuli.digest,
        "precision": precision,
        "max_grid": max_grid,
        "preprocess": backbone.preprocess.model_dump(),
    }
    channels_last = bool(getattr(backbone, "channels_last", False))  # as resolve_precision reads cpu_bf16
    batches = stimulus_batches(stimuli, backbone.preprocess, batch_size, cache.decoded, channels_last)
    return extract(backbone, batches, len(stimuli), cache, key, meta,
                   device=device, precision=precision, pool=lambda t: _cap_grid(t, max_grid), store_dtype=store_dtype,
                   progress=progress)


def view_tokens(
    backbone: Backbone,
    stimuli: Stimuli,
    view: View,
    cache: TokenCache,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    precision: str = "fp32",
    store_dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
) -> TokenStore:
    """Tokens of ``backbone`` on a :class:`~harness.contracts.View` of ``stimuli``, cached by content like plain tokens."""
    key = token_key(view=view.key(), weights=backbone.weights_digest(), preprocess=backbone.preprocess.model_dump(),
                    layers=list(backbone.layers), stimuli=stimuli.digest, precision=precision)
    n = view.n_rows(len(stimuli))
    hit = cache.open(key)  # checksums verified, as for plain tokens: a damaged entry is extracted again
    if hit is not None:
        if progress:
            progress(n, n)
        return hit
    meta = {"backbone": backbone.ctx.entry.name, "random_init": backbone.ctx.entry.random_init,
            "weights": backbone.weights_digest(), "stimuli": stimuli.digest, "precision": precision, **view.meta()}
    return extract(backbone, view.batches(stimuli, backbone.preprocess, batch_size), n, cache, key, meta, device=device,
                   precision=precision, pool=view.pool, store_dtype=store_dtype, progress=progress)


def extract(
    backbone: Backbone,
    batches: Iterable[tuple[int, torch.Tensor]],
    n: int,
    cache: TokenCache,
    key: str,
    meta: dict[str, Any],
    *,
    device: str,
    precision: str,
    pool: Callable[[torch.Tensor], torch.Tensor],
    store_dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
) -> TokenStore:
    """The one extraction loop: ``(first row, batch)`` pairs → tokens → ``pool`` → guarded dtype → cache entry ``key``.

    Every layer is stored in ``store_dtype`` unless float16 cannot hold its range (decided on
    the first batch, :func:`storage_dtype`); a later batch overflowing a float16 layer is an
    error, never a silent ``inf``. Memory is bounded by one batch.
    """
    backbone.to(device)
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    # cast (and un-channels-last) in torch, on the device: numpy's float32→float16 is ~100× slower
    requested = getattr(torch, np.dtype(store_dtype).name)
    layer_dtype: dict[str, torch.dtype] = {}
    with cache.writer(key, backbone.layers, n, meta, store_dtype) as w, torch.inference_mode():
        for start, batch in batches:
            batch = batch.to(device, non_blocking=True)
            with autocast:
                toks = backbone.tokens(batch)
            for layer, t in toks.items():
                local32, glob32 = pool(t.local.float()), t.global_.float()
                if layer not in layer_dtype:  # decided once, on the first batch (not re-measured per batch)
                    layer_dtype[layer] = storage_dtype(local32, requested)
                dtype = layer_dtype[layer]
                local, peak_local = stored(local32, dtype)
                glob, peak_glob = stored(glob32, dtype)
                peak = max(peak_local, peak_glob)
                if FP16_MAX < peak < float("inf"):  # NaN/inf from the net itself pass through unchanged
                    raise HarnessError(
                        f"backbone {backbone.ctx.entry.name!r} layer {layer!r}: tokens of rows {start}.."
                        f"{start + len(batch) - 1} exceed float16's range (peak {peak:.3g}); "
                        "extract with store_dtype='float32'")
                w.write(start, layer, local.cpu().numpy(), glob.cpu().numpy())
            if progress:
                progress(start + len(batch), n)
    store = cache.get(key)
    if store is None:
        raise HarnessError(f"token cache {cache.root}: entry {key[:12]} missing right after it was written")
    return store
