"""Stimulus batches of cached tokens on the training device, standardised per channel.

Trained heads step through thousands of small batches, so tokens are read from the
memory-mapped cache once (optionally pooled to a coarser grid) and kept on the
device in float16 when they fit the budget; otherwise each batch is read from the
memory map. Per-channel z-scoring with training-stimulus statistics puts every
layer on one scale, so one learning rate suits shallow and deep layers alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from harness.contracts import LayerTokens, TokenStore

Parts = Literal["local", "global", "both"]
#: stimuli read from the memory map at a time while preloading or computing statistics
_READ_CHUNK = 256
#: statistics are estimated from at most this many training stimuli
_STATS_MAX = 512
#: default preload budget on CPU (bytes)
_CPU_BUDGET = 8 * 2**30


def _pool(local: torch.Tensor, grid: int | None) -> torch.Tensor:
    h, w = local.shape[-2:]
    if grid is None or max(h, w) <= grid:
        return local
    return F.adaptive_avg_pool2d(local, (min(grid, h), min(grid, w)))


def free_device_bytes(device: str) -> int | None:
    """Free accelerator memory, or None on CPU (where the caller's budget decides)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return None


@dataclass
class _Layer:
    local: torch.Tensor | np.ndarray | None  #: preloaded N'×C×H×W tensor, or the memory map
    global_: torch.Tensor | np.ndarray | None
    local_mu: torch.Tensor | None = None
    local_sd: torch.Tensor | None = None
    global_mu: torch.Tensor | None = None
    global_sd: torch.Tensor | None = None
    #: C × k projection onto the layer's top-k principal channel directions (None: all channels)
    pcs: torch.Tensor | None = None
    #: the preloaded tensors already hold standardised (and projected) values (float32 on the CPU: see from_store)
    standardised: bool = False


#: channel SDs are floored at this fraction of the layer's median channel SD
SD_FLOOR = 0.1


def _floored(sd: torch.Tensor) -> torch.Tensor:
    """Channel SDs floored relative to the layer's own scale (a tenth of its median channel SD).

    Why: a nearly dead channel (EfficientNet-Lite0's ``conv_head`` has ReLU6 channels that are 0 on almost
    every image) has an SD near 0 on the statistics sample, so its rare non-zero values became
    standardised outliers of 10^4 that wrecked every trained head on that net (classToken median r 0.01
    vs ridge 0.62 on the synthetic brain). Relative, so a layer of tiny scale (random-init deep maps,
    ~1e-8) is still standardised like any other.
    """
    if not sd.numel():
        return sd
    return sd.clamp_min(max(float(sd.median()) * SD_FLOOR, float(sd.max()) * 1e-6, 1e-30))


class TokenSource:
    """Batches of ``LayerTokens`` (float32, standardised) for stimulus indices of the dataset."""

    def __init__(self, layers: Sequence[str], data: list[_Layer], row_of: np.ndarray | None, device: str,
                 grid: int | None, preloaded: bool, shapes: Sequence[tuple[int, int, int]]) -> None:
        self.layers = tuple(layers)
        self._shapes = tuple(shapes)
        self._data = data
        self._row_of = row_of  #: dataset stimulus index → row of the preloaded tensors
        self.device = device
        self.grid = grid
        self.preloaded = preloaded
        self._count = next(len(t) for d in data for t in (d.local, d.global_) if t is not None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_store(cls, store: TokenStore, needed: np.ndarray, stats_idx: np.ndarray, device: str, *,
                   parts: Parts = "both", grid: int | None = None, budget_bytes: float | None = None,
                   pcs: int | None = None) -> TokenSource:
        """Preload ``needed`` stimuli when their (pooled) tokens fit the budget (float16), else stream.

        The budget is ``budget_bytes`` capped at 60 % of free GPU memory on CUDA; without
        ``budget_bytes``, 60 % of free GPU memory on CUDA and 8 GiB on CPU. ``pcs``: project each layer's
        standardised channels onto its top ``pcs`` principal directions (estimated on ``stats_idx``).
        """
        needed = np.unique(np.asarray(needed, dtype=np.int64))
        layers = store.layers
        shapes = store.shapes()
        per_stim = 0
        out_shapes = []
        for layer in layers:
            c, h, w = shapes[layer]
            hp, wp = (h, w) if grid is None or max(h, w) <= grid else (min(grid, h), min(grid, w))
            out_shapes.append((c, hp, wp) if parts != "global" else (c, 0, 0))
            per_stim += (c * hp * wp if parts != "global" else 0) + (c if parts != "local" else 0)
        free = free_device_bytes(device)
        caps = [b for b in (budget_bytes, None if free is None else 0.6 * free) if b is not None]
        budget = min(caps) if caps else _CPU_BUDGET
        preload = per_stim * 2 * len(needed) <= budget
        # on the CPU, float32 standardised once (when it fits) spares every step a half → float conversion and the
        # (x − μ) / σ of every token: ~15 % of a FactorTopy step on EfficientNet-Lite0 tokens (torch.profiler)
        once = preload and free is None and per_stim * 4 * len(needed) <= budget
        data: list[_Layer] = []
        for layer in layers:
            loc = store.local(layer) if parts != "global" else None
            glob = store.global_(layer) if parts != "local" else None
            if preload:  # float16 on the device, unless the cache kept the layer in float32 (outside float16's range)
                half = store.meta.get("dtypes", {}).get(layer, "float16") == "float16" and not once
                dt = torch.float16 if half else torch.float32
                loc = cls._read_local(loc, needed, grid, device, dt) if loc is not None else None
                glob = torch.from_numpy(np.asarray(glob[needed], np.float32)).to(device, dt) if glob is not None else None
            data.append(_Layer(local=loc, global_=glob))
        row_of = None
        if preload:
            row_of = np.full(store.n, -1, np.int64)
            row_of[needed] = np.arange(len(needed))
        src = cls(layers, data, row_of, device, grid, preload, out_shapes)
        stats = np.unique(np.asarray(stats_idx, np.int64))
        if len(stats) > _STATS_MAX:
            stats = np.sort(np.random.default_rng(0).choice(stats, _STATS_MAX, replace=False))
        src._fit_stats(stats)
        if pcs is not None:
            src._fit_pcs(stats, pcs)
        if once:
            src._standardise_in_place()
        return src

    @classmethod
    def from_tensors(cls, layers: Sequence[str], local: Sequence[torch.Tensor | None],
                     global_: Sequence[torch.Tensor | None], device: str, stats_idx: np.ndarray | None = None) -> TokenSource:
        """Tokens already in memory (benchmarks, tests): rows are the stimulus indices."""
        data = [_Layer(local=None if loc is None else loc.to(device, torch.float16),
                       global_=None if g is None else g.to(device, torch.float16))
                for loc, g in zip(local, global_, strict=True)]
        n = next(len(t) for t in (*local, *global_) if t is not None)
        shapes = [(int(loc.shape[1]), int(loc.shape[2]), int(loc.shape[3])) if loc is not None else (int(g.shape[1]), 0, 0)
                  for loc, g in zip(local, global_, strict=True)]  # type: ignore[union-attr]
        src = cls(layers, data, np.arange(n), device, None, True, shapes)
        src._fit_stats(np.arange(min(n, _STATS_MAX)) if stats_idx is None else np.asarray(stats_idx)[:_STATS_MAX])
        return src

    @staticmethod
    def _read_local(mm: np.ndarray, idx: np.ndarray, grid: int | None, device: str,
                    dtype: torch.dtype = torch.float16) -> torch.Tensor:
        """Chunks go to the device as they are read: host memory holds one chunk, never the whole set."""
        out: torch.Tensor | None = None
        for s in range(0, len(idx), _READ_CHUNK):
            t = _pool(torch.from_numpy(np.asarray(mm[idx[s : s + _READ_CHUNK]], np.float32)), grid)
            if out is None:
                out = torch.empty((len(idx), *t.shape[1:]), dtype=dtype, device=device)
            out[s : s + len(t)] = t.to(device, dtype)
        assert out is not None
        return out

    def _fit_stats(self, idx: np.ndarray) -> None:
        for d in self._data:
            if d.local is not None:
                x = self._raw_local(d, idx)  # n×C×H×W float32
                d.local_mu = x.mean(dim=(0, 2, 3))
                d.local_sd = _floored(x.std(dim=(0, 2, 3)))
            if d.global_ is not None:
                g = self._raw_global(d, idx)
                d.global_mu = g.mean(0)
                d.global_sd = _floored(g.std(0))

    def _fit_pcs(self, idx: np.ndarray, k: int) -> None:
        """Each layer's top-``k`` principal channel directions of its standardised tokens on ``idx``
        (local tokens over stimuli and positions; the global token where a layer has no local map).

        Why: a trained head's channel alignment has ``C × bottleneck`` weights per layer, so with a few hundred
        training stimuli a 1 280-channel layer can fit noise that a 16-channel layer cannot, and a layer selector
        learns capacity instead of content (FactorTopy chose the same deep mix for every ROI of the synthetic
        brain, issue 12). ``k`` directions per layer put the layers on an equal footing; they also cut the
        alignment's arithmetic by ``C / k``. The principal directions come from the fit stimuli only.
        """
        for d in self._data:
            if d.local is not None:
                x = self._standardised_local(d, idx)
                x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
            elif d.global_ is not None:
                x = (self._raw_global(d, idx) - d.global_mu) / d.global_sd
            else:
                continue
            c = x.shape[1]
            if k >= c:
                continue
            x = x.double()
            _, vecs = torch.linalg.eigh(x.T @ x / len(x))
            top = vecs[:, -k:].flip(1)  # descending variance
            top = top * torch.sign(top[top.abs().argmax(0), torch.arange(k)])  # sign fixed: largest entry positive
            d.pcs = top.to(torch.float32)
        self._shapes = tuple((d.pcs.shape[1] if d.pcs is not None else c, h, w)
                             for d, (c, h, w) in zip(self._data, self._shapes, strict=True))

    def _standardised_local(self, d: _Layer, idx: np.ndarray) -> torch.Tensor:
        return (self._raw_local(d, idx) - d.local_mu[:, None, None]) / d.local_sd[:, None, None]  # type: ignore[index]

    @staticmethod
    def _project_local(d: _Layer, x: torch.Tensor) -> torch.Tensor:
        return x if d.pcs is None else torch.einsum("nchw,ck->nkhw", x, d.pcs.to(x.device)).contiguous()

    @staticmethod
    def _project_global(d: _Layer, x: torch.Tensor) -> torch.Tensor:
        return x if d.pcs is None else x @ d.pcs.to(x.device)

    def _standardise_in_place(self) -> None:
        """Standardise (and project) preloaded float32 tensors once, so :meth:`batch` only gathers rows."""
        for d in self._data:
            if isinstance(d.local, torch.Tensor) and d.local.dtype == torch.float32:
                d.local.sub_(d.local_mu[:, None, None]).div_(d.local_sd[:, None, None])  # type: ignore[index]
                d.local = self._project_local(d, d.local)
            if isinstance(d.global_, torch.Tensor) and d.global_.dtype == torch.float32:
                d.global_.sub_(d.global_mu).div_(d.global_sd)
                d.global_ = self._project_global(d, d.global_)
            d.standardised = all(t is None or (isinstance(t, torch.Tensor) and t.dtype == torch.float32)
                                 for t in (d.local, d.global_))

    # ------------------------------------------------------------------ access
    def _raw_local(self, d: _Layer, idx: np.ndarray) -> torch.Tensor:
        if self.preloaded:
            rows = torch.as_tensor(self._rows(idx), device=self.device)
            return d.local[rows].float()  # type: ignore[index]  # (index_select on dim 0 is ~30× slower on CPU)
        order = np.argsort(idx)
        t = torch.from_numpy(np.asarray(d.local[idx[order]], np.float32))  # type: ignore[index]
        t = _pool(t, self.grid)[np.argsort(order)]
        return t.to(self.device)

    def _raw_global(self, d: _Layer, idx: np.ndarray) -> torch.Tensor:
        if self.preloaded:
            rows = torch.as_tensor(self._rows(idx), device=self.device)
            return d.global_[rows].float()  # type: ignore[index]
        order = np.argsort(idx)
        t = torch.from_numpy(np.asarray(d.global_[idx[order]], np.float32))[np.argsort(order)]  # type: ignore[index]
        return t.to(self.device)

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        assert self._row_of is not None
        rows = self._row_of[np.asarray(idx, np.int64)]
        if (rows < 0).any():
            raise IndexError("stimulus index was not preloaded into the token source")
        return rows

    def batch(self, idx: np.ndarray) -> list[LayerTokens]:
        """Per layer: standardised local ``B×C×H×W`` and global ``B×C`` (a part not loaded is an empty tensor)."""
        idx = np.asarray(idx, np.int64)
        out = []
        empty = torch.empty(0, device=self.device)
        for d in self._data:
            loc = glob = empty
            if d.standardised:
                loc = self._raw_local(d, idx) if d.local is not None else empty
                glob = self._raw_global(d, idx) if d.global_ is not None else empty
            else:
                if d.local is not None:
                    loc = self._project_local(d, self._standardised_local(d, idx))
                if d.global_ is not None:
                    glob = self._project_global(d, (self._raw_global(d, idx) - d.global_mu) / d.global_sd)
            out.append(LayerTokens(local=loc, global_=glob))
        return out

    def stats(self) -> dict[str, torch.Tensor]:
        """The standardisation statistics, ``tokens.<layer index>.{local,global}_{mu,sd}`` and the channel
        projection ``tokens.<layer index>.pcs`` (when used): saved with a
        fitted model so an analysis can feed it tokens exactly as training did."""
        out: dict[str, torch.Tensor] = {}
        for i, d in enumerate(self._data):
            for name in ("local_mu", "local_sd", "global_mu", "global_sd", "pcs"):
                t = getattr(d, name)
                if t is not None:
                    out[f"tokens.{i}.{name}"] = t
        return out

    @property
    def n_rows(self) -> int:
        """Stimuli addressable by :meth:`batch` (the dataset's stimulus count)."""
        return len(self._row_of) if self._row_of is not None else int(self._count)

    def shapes(self) -> list[tuple[int, int, int]]:
        """``(C, H, W)`` per layer as batches deliver them (``H = W = 0`` when local tokens are not loaded)."""
        return list(self._shapes)
