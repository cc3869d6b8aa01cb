"""Channel images of an ROI (Yang, Gee & Shi 2024, appendix "Channel Visualization").

For one ROI (or one unit): the local tokens of every layer in the shared channel space are summed
with the ROI-average layer selector weights; the ROI's units' channel readout weights are
reduced by PCA and the summed tokens projected on the top 3 principal components give an RGB
image over the stimulus (one unit: the projection on its own readout, greyscale).

Added here, to check the images against planted truth: the *response map*. For every token
cell, the correlation over stimuli between the ROI's mean-readout channel image at that cell
and the ROI's mean measured response. A unit whose response is its channels read at its
receptive field has its map peak at that receptive field, so on the synthetic brain the peak
must land on the planted RF centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.analysis.readout import ChannelReadout
from harness.errors import HarnessError

_CHUNK = 64  #: stimuli mapped into the channel space at a time (bounds memory)


@dataclass
class ChannelImages:
    """Per chosen stimulus a ``K × H × W`` image (K = 3 PCs, or 1 for a single unit) and the response map."""

    images: np.ndarray  #: N × K × H × W projections (not yet scaled for display)
    components: np.ndarray  #: K × D principal directions of the readout weights (unit: its own direction)
    explained: np.ndarray  #: K: fraction of readout variance per component (1.0 for a single unit)
    response_map: np.ndarray | None  #: H × W correlation of the mean-readout image with the mean response
    peak_xy: tuple[float, float] | None  #: response-map peak, fractions of the input crop (cell centre)


def components(weights: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` principal directions of the units' readout rows (sign: along the mean readout) and their
    explained-variance fractions; a single unit gets its own unit-norm readout (the greyscale case)."""
    w = np.asarray(weights, np.float64)
    if len(w) == 1:
        n = np.linalg.norm(w[0])
        return (w / (n if n > 0 else 1.0)), np.ones(1)
    wc = w - w.mean(0)
    _, s, vt = np.linalg.svd(wc, full_matrices=False)
    k = min(k, len(s))
    pcs = vt[:k]
    ref = w.mean(0)
    signs = np.sign(pcs @ ref)
    signs[signs == 0] = 1.0
    var = s**2
    return pcs * signs[:, None], var[:k] / max(float(var.sum()), 1e-30)


def summed_tokens(readout: ChannelReadout, layer_w: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``N × D × H × W``: aligned local tokens summed over layers with weights ``layer_w``."""
    out = []
    for s in range(0, len(idx), _CHUNK):
        maps = readout.aligned_local(idx[s : s + _CHUNK])  # n × L × D × H × W
        out.append(np.einsum("nldhw,l->ndhw", maps, layer_w))
    return np.concatenate(out)


def _corr_map(feat: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r over stimuli, per cell, of ``feat`` (N × H × W) with ``y`` (N)."""
    f = feat - feat.mean(0)
    yc = y - y.mean()
    den = np.sqrt((f**2).sum(0) * (yc**2).sum())
    return np.where(den > 0, np.einsum("nhw,n->hw", f, yc) / np.maximum(den, 1e-30), 0.0)


def channel_images(readout: ChannelReadout, units: np.ndarray, show_idx: np.ndarray,
                   responses: np.ndarray | None = None, map_idx: np.ndarray | None = None) -> ChannelImages:
    """``units``: boolean mask of the ROI's units; ``show_idx``: stimuli to draw; ``responses`` (stimuli × units,
    all units) with ``map_idx`` (stimuli to correlate over) give the response map."""
    units = np.asarray(units, bool)
    if not units.any():
        raise HarnessError("no units selected for the channel image")
    layer_w = readout.layer_weights[units].mean(0)
    w = readout.weights[units]
    pcs, explained = components(w)
    feat = summed_tokens(readout, layer_w, np.asarray(show_idx, np.int64))
    images = np.einsum("ndhw,kd->nkhw", feat, pcs)
    rmap, peak = None, None
    if responses is not None and map_idx is not None:
        map_idx = np.asarray(map_idx, np.int64)
        mean_dir = w.mean(0)
        grey = np.einsum("ndhw,d->nhw", summed_tokens(readout, layer_w, map_idx), mean_dir)
        r = np.asarray(responses, np.float64)[np.ix_(map_idx, np.flatnonzero(units))]
        y = ((r - r.mean(0)) / np.where(r.std(0) > 0, r.std(0), 1.0)).mean(1)  # mean of z-scored responses
        rmap = _corr_map(grey, y)
        iy, ix = np.unravel_index(int(np.argmax(rmap)), rmap.shape)
        h, wd = rmap.shape
        peak = ((ix + 0.5) / wd, (iy + 0.5) / h)
    return ChannelImages(images=images, components=pcs, explained=explained, response_map=rmap, peak_xy=peak)


def _to_uint8(img: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``K × H × W`` → ``H × W × 3`` uint8, each channel scaled by its own [lo, hi] (shared over stimuli)."""
    x = (img - lo[:, None, None]) / np.maximum(hi - lo, 1e-12)[:, None, None]
    x = np.clip(x, 0.0, 1.0)
    if len(x) == 1:
        x = np.repeat(x, 3, 0)
    elif len(x) == 2:
        x = np.concatenate([x, np.zeros_like(x[:1])])
    return (x.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def write_pngs(result: ChannelImages, stimuli: Sequence, crop_stimulus, out: Path, prefix: str,
               size: int = 224) -> list[tuple[str, Path]]:
    """One PNG per stimulus (the stimulus as the network saw it | its channel image), plus the response map.

    ``stimuli``: (id, PIL image) pairs in ``result.images`` order; ``crop_stimulus`` applies the backbone's
    resize + centre crop so image and tokens share one frame. Returns (stimulus id or '(response map)', path).
    """
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    flat = result.images.transpose(1, 0, 2, 3).reshape(len(result.images[0]), -1)
    lo, hi = np.percentile(flat, 1, axis=1), np.percentile(flat, 99, axis=1)
    written = []
    for (sid, im), img in zip(stimuli, result.images, strict=True):
        left = crop_stimulus(im).resize((size, size), Image.Resampling.BILINEAR)
        right = Image.fromarray(_to_uint8(img, lo, hi)).resize((size, size), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (2 * size, size))
        canvas.paste(left, (0, 0))
        canvas.paste(right, (size, 0))
        p = out / f"{prefix}_{sid}.png"
        canvas.save(p)
        written.append((str(sid), p))
    if result.response_map is not None:
        m = result.response_map
        g = _to_uint8(m[None], np.array([min(0.0, float(m.min()))]), np.array([max(1e-6, float(m.max()))]))
        p = out / f"{prefix}_response_map.png"
        Image.fromarray(g).resize((size, size), Image.Resampling.NEAREST).save(p)
        written.append(("(response map)", p))
    return written
