"""The generator behind the synthetic ground-truth brain: planted truth → voxel responses.

Kept free of plugin machinery so heads, metrics and tests can call it directly; the
dataset plugins in :mod:`harness_datasets.synthetic` wrap it. See that module's
docstring for the model and the :class:`GroundTruth` fields.

Cost: the readout is rank-``n_basis`` in channels and separable in space, so one
voxel costs ``n_basis × grid²`` multiply-adds per stimulus and layer it reads; local
maps are pooled to at most ``readout_grid²`` first. Work is chunked over stimuli and
voxels, so memory stays bounded by the outputs (``N × V``) plus one chunk.
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import DataError

if TYPE_CHECKING:
    from harness.cache import TokenStore

#: bump when generation changes numerically (keys the on-disk copy)
GENERATOR_VERSION = "2"
_SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------- design
@dataclass(frozen=True)
class BrainDesign:
    """Everything that defines the planted brain; subject-independent apart from voxel sampling."""

    rois: tuple[str, ...] = ("V1", "V2", "V4", "IT")
    voxels_per_roi: int = 50
    sheet: str = "2d"  #: "2d": z = 0; "3d": the sheet is folded, z = fold_mm · sin(2π x / fold_period_mm)
    #: "bands": ROIs side by side along x; "mixed": every ROI's voxels spread over the whole sheet, intermixed
    #: (ROI membership carries no position: what a clustering of coordinates alone cannot recover)
    roi_layout: str = "bands"
    roi_width_mm: float = 10.0
    sheet_height_mm: float = 10.0
    fold_mm: float = 3.0
    fold_period_mm: float = 12.0
    #: fraction of the backbone's depth read by the first and by the last ROI (linear in ROI order)
    depth_range: tuple[float, float] = (0.0, 1.0)
    layer_jitter: float = 0.0  #: sd (layer indices) of the smooth within-ROI variation of the true layer
    layer_mix_sd: float = 0.0  #: 0: one layer per voxel; > 0: Gaussian mix over layers of this width
    rf_size: tuple[float, float] = (0.06, 0.25)  #: RF sigma (fraction of the image) of first / last ROI
    rf_ecc_gain: float = 0.5  #: RF size grows by this fraction per unit eccentricity
    rf_margin: float = 0.1  #: RF centres span [margin, 1 - margin] of the image
    global_mix: tuple[float, float] = (0.0, 0.5)  #: weight of the global token, first / last ROI
    mix_jitter: float = 0.0  #: sd of the smooth within-ROI variation of the global mix
    n_basis: int = 8  #: rank of the smooth channel-weight field
    #: share of channel-weight variance that is one random pattern per ROI (0: weights only vary smoothly
    #: over the sheet, so ROIs do not differ in the channels they read; > 0 plants an ROI channel signature)
    roi_channel_share: float = 0.0
    weight_length_mm: float = 5.0  #: length scale over which channel weights change
    field_length_mm: float = 4.0  #: length scale of the layer / mix / SNR jitter fields
    readout_grid: int = 16  #: local maps are average-pooled to at most this × this before the readout
    snr: float = 1.0  #: single-repeat signal / noise variance ratio
    snr_spread: float = 0.0  #: per-voxel SNR = snr · exp(snr_spread · smooth unit field)
    n_repeats: int = 2
    seed: int = 0

    def roi_levels(self) -> dict[str, float]:
        return {r: float(k) for k, r in enumerate(self.rois)}

    def roi_layer_pos(self, n_layers: int) -> np.ndarray:
        """Planted (continuous) layer index of each ROI's centre: linear in ROI order."""
        k = len(self.rois)
        frac = np.linspace(self.depth_range[0], self.depth_range[1], k) if k > 1 else np.array([self.depth_range[0]])
        return frac * (n_layers - 1)

    def hierarchy_slope(self, n_layers: int) -> float:
        """Planted layer indices per ROI level."""
        k = len(self.rois)
        return 0.0 if k < 2 else (self.depth_range[1] - self.depth_range[0]) * (n_layers - 1) / (k - 1)


# ----------------------------------------------------------------------------- truth
@dataclass
class GroundTruth:
    """The planted truth of one subject. Arrays are per voxel (length V) unless noted.

    Coordinates ``rf_x``/``rf_y``/``rf_size`` are fractions of the backbone's input
    crop (the token grid's frame): (0, 0) top-left, x to the right, y down;
    ``rf_size`` is the Gaussian sigma. ``x, y, z`` are sheet coordinates in mm.
    """

    voxel_ids: np.ndarray  #: V str
    rois: np.ndarray  #: V str
    roi_names: tuple[str, ...]
    roi_level: dict[str, float]  #: ROI → hierarchy level (its order)
    roi_layer_pos: dict[str, float]  #: ROI → planted layer index (continuous) of its centre
    hierarchy_slope: float  #: planted layer indices per ROI level
    layers: tuple[str, ...]  #: the backbone's layers, shallow → deep
    backbone: str
    layer_weights: np.ndarray  #: V × L, rows sum to 1
    layer_pos: np.ndarray  #: V planted continuous layer index (before mixing)
    layer_index: np.ndarray  #: V int, the layer with the largest weight
    rf_x: np.ndarray
    rf_y: np.ndarray
    rf_size: np.ndarray
    scale_mix: np.ndarray  #: V in [0, 1]: weight of the global token (1 − weight of the local RF readout)
    snr: np.ndarray  #: V single-repeat SNR
    n_repeats: int
    noise_ceiling_r: np.ndarray  #: V: sqrt(1 / (1 + 1 / (snr · R))), the expected r of the true signal with the data
    xyz: np.ndarray  #: V × 3 sheet coordinates (mm)
    weight_basis: np.ndarray  #: V × B smooth fields Φ; channel weights of layer l are Φ @ channel_basis[l]
    channel_basis: dict[str, np.ndarray]  #: layer → B × C
    signal: np.ndarray  #: N × V noiseless responses (z-scored over stimuli)
    meta: dict[str, Any] = field(default_factory=dict)

    def channel_weights(self, layer: str) -> np.ndarray:
        """V × C true channel weights of every voxel on ``layer`` (zero layer weight not applied)."""
        return self.weight_basis @ self.channel_basis[layer]

    def roi_mask(self, roi: str) -> np.ndarray:
        return self.rois == roi

    def table(self) -> Any:
        """One row per voxel: the per-voxel truth as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame({
            "voxel_id": self.voxel_ids, "roi": self.rois, "x": self.xyz[:, 0], "y": self.xyz[:, 1], "z": self.xyz[:, 2],
            "layer_index": self.layer_index, "layer": np.asarray(self.layers)[self.layer_index], "layer_pos": self.layer_pos,
            "rf_x": self.rf_x, "rf_y": self.rf_y, "rf_size": self.rf_size, "scale_mix": self.scale_mix, "snr": self.snr,
            "noise_ceiling_r": self.noise_ceiling_r,
        })

    # -- persistence: one .npz (arrays) + one .json (the rest), written atomically ---------
    _ARRAYS = ("voxel_ids", "rois", "layer_weights", "layer_pos", "layer_index", "rf_x", "rf_y", "rf_size",
               "scale_mix", "snr", "noise_ceiling_r", "xyz", "weight_basis", "signal")

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(getattr(self, k)) for k in self._ARRAYS}
        arrays["voxel_ids"] = arrays["voxel_ids"].astype(str)
        arrays["rois"] = arrays["rois"].astype(str)
        for i, layer in enumerate(self.layers):
            arrays[f"channel_basis_{i:03d}"] = self.channel_basis[layer]
        _atomic_npz(folder / "truth.npz", arrays)
        meta = {"roi_names": list(self.roi_names), "roi_level": self.roi_level, "roi_layer_pos": self.roi_layer_pos,
                "hierarchy_slope": self.hierarchy_slope, "layers": list(self.layers), "backbone": self.backbone,
                "n_repeats": self.n_repeats, "meta": self.meta}
        _atomic_write(folder / "truth.json", json.dumps(meta, indent=1, default=str).encode())

    @classmethod
    def load(cls, folder: Path) -> GroundTruth:
        try:
            meta = json.loads((folder / "truth.json").read_text())
            with np.load(folder / "truth.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in cls._ARRAYS}
                layers = tuple(meta["layers"])
                basis = {layer: z[f"channel_basis_{i:03d}"] for i, layer in enumerate(layers)}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{folder}: not a saved synthetic ground truth (truth.json + truth.npz): {exc}") from exc
        return cls(roi_names=tuple(meta["roi_names"]), roi_level=meta["roi_level"], roi_layer_pos=meta["roi_layer_pos"],
                   hierarchy_slope=float(meta["hierarchy_slope"]), layers=layers, backbone=meta["backbone"],
                   n_repeats=int(meta["n_repeats"]), channel_basis=basis, meta=meta.get("meta", {}), **arrays)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{time.monotonic_ns()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- smooth fields
def smooth_field(seed: list[int] | int, length: float, n_features: int = 64) -> Any:
    """A random smooth function on the sheet (≈ unit-variance Gaussian process, RBF kernel of ``length`` mm).

    Random Fourier features: cheap to evaluate at any number of positions, and the
    same function for every subject because it depends on ``seed`` only.
    """
    rng = np.random.default_rng(seed)
    omega = rng.standard_normal((n_features, 2)) / length
    phase = rng.uniform(0.0, 2 * np.pi, n_features)
    amp = rng.standard_normal(n_features) * math.sqrt(2.0 / n_features)

    def f(xy: np.ndarray) -> np.ndarray:
        return np.cos(xy @ omega.T + phase) @ amp

    return f


# ----------------------------------------------------------------------------- voxel truth
def sample_positions(d: BrainDesign, subject_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel sheet positions (V × 2, mm), ROI index per voxel, and within-ROI (u, t) ∈ [0, 1)²."""
    rng = np.random.default_rng([d.seed, 1, subject_index])
    k = np.repeat(np.arange(len(d.rois)), d.voxels_per_roi)
    ut = rng.uniform(0.0, 1.0, (len(k), 2))
    if d.roi_layout == "bands":
        xy = np.stack([(k + ut[:, 0]) * d.roi_width_mm, ut[:, 1] * d.sheet_height_mm], axis=1)
    elif d.roi_layout == "mixed":  # u spans the whole sheet's width, so retinotopy stays continuous across it
        xy = np.stack([ut[:, 0] * len(d.rois) * d.roi_width_mm, ut[:, 1] * d.sheet_height_mm], axis=1)
    else:
        raise DataError(f"synthetic brain: roi_layout must be 'bands' or 'mixed', not {d.roi_layout!r}")
    return xy, k, ut


def voxel_truth(d: BrainDesign, layers: tuple[str, ...], subject_index: int) -> dict[str, np.ndarray]:
    """Per-voxel planted properties as smooth functions of sheet position (no tokens needed)."""
    xy, k, ut = sample_positions(d, subject_index)
    n_roi, n_layers = len(d.rois), len(layers)
    level = k / max(1, n_roi - 1)
    # retinotopy: RF centre follows the within-ROI position, mirrored in every other ROI
    # so the map is continuous across ROI borders (as at the V1/V2 border)
    span = 1.0 - 2.0 * d.rf_margin
    u = np.where((k % 2 == 0) | (d.roi_layout == "mixed"), ut[:, 0], 1.0 - ut[:, 0])
    rf_x = d.rf_margin + span * u
    rf_y = d.rf_margin + span * ut[:, 1]
    ecc = np.hypot(rf_x - 0.5, rf_y - 0.5) / 0.5
    s0, s1 = d.rf_size
    rf_size = s0 * (s1 / s0) ** level * (1.0 + d.rf_ecc_gain * ecc)
    # layer: rises linearly with ROI order, plus a smooth within-ROI perturbation
    roi_pos = d.roi_layer_pos(n_layers)
    layer_pos = roi_pos[k] + d.layer_jitter * smooth_field([d.seed, 2], d.field_length_mm)(xy)
    layer_pos = np.clip(layer_pos, 0.0, n_layers - 1)
    grid = np.arange(n_layers)[None, :]
    if d.layer_mix_sd > 0:
        w = np.exp(-0.5 * ((grid - layer_pos[:, None]) / d.layer_mix_sd) ** 2)
        w /= w.sum(1, keepdims=True)
        w[w < 0.01] = 0.0
    else:
        w = (grid == np.rint(layer_pos)[:, None]).astype(np.float64)
    w /= w.sum(1, keepdims=True)
    g0, g1 = d.global_mix
    mix = np.clip(g0 + (g1 - g0) * level + d.mix_jitter * smooth_field([d.seed, 3], d.field_length_mm)(xy), 0.0, 1.0)
    snr = d.snr * np.exp(d.snr_spread * smooth_field([d.seed, 4], d.field_length_mm)(xy)) if d.snr_spread else np.full(len(k), d.snr)
    phi = np.stack([smooth_field([d.seed, 5, b], d.weight_length_mm)(xy) for b in range(d.n_basis)], axis=1)
    if d.roi_channel_share > 0:  # unit-variance ROI patterns mixed in at constant total variance
        if not 0 < d.roi_channel_share <= 1:
            raise DataError(f"synthetic brain: roi_channel_share must be in [0, 1], not {d.roi_channel_share}")
        roi_pattern = np.random.default_rng([d.seed, 9]).standard_normal((n_roi, d.n_basis))
        phi = math.sqrt(1 - d.roi_channel_share) * phi + math.sqrt(d.roi_channel_share) * roi_pattern[k]
    if d.sheet == "3d":
        z = d.fold_mm * np.sin(2 * np.pi * xy[:, 0] / d.fold_period_mm)
    elif d.sheet == "2d":
        z = np.zeros(len(k))
    else:
        raise DataError(f"synthetic brain: sheet must be '2d' or '3d', not {d.sheet!r}")
    return {"k": k, "xyz": np.column_stack([xy, z]), "rf_x": rf_x, "rf_y": rf_y, "rf_size": rf_size, "layer_pos": layer_pos,
            "layer_weights": w, "scale_mix": mix, "snr": snr, "phi": phi}


def channel_basis(d: BrainDesign, layer_index: int, n_channels: int) -> np.ndarray:
    """B × C random channel directions of one layer (seeded by layer position, not name)."""
    rng = np.random.default_rng([d.seed, 6, layer_index])
    return rng.standard_normal((d.n_basis, n_channels)) / math.sqrt(n_channels)


# ----------------------------------------------------------------------------- rendering
def cell_gaussian(centre: np.ndarray, sigma: np.ndarray, n: int) -> np.ndarray:
    """V × n: a 1-D Gaussian integrated over n equal cells of [0, 1], renormalised to sum 1.

    Integrating (not sampling) keeps small RFs on coarse grids well defined.
    """
    from scipy.special import erf

    edges = np.linspace(0.0, 1.0, n + 1)
    cdf = 0.5 * (1.0 + erf((edges[None, :] - centre[:, None]) / (sigma[:, None] * _SQRT2)))
    g = np.diff(cdf, axis=1)
    s = g.sum(1, keepdims=True)
    return g / np.where(s > 0, s, 1.0)


def _zscore(a: np.ndarray) -> np.ndarray:
    sd = a.std(0)
    return (a - a.mean(0)) / np.where(sd > 1e-12, sd, 1.0)


def render_signal(store: TokenStore, layers: tuple[str, ...], truth: dict[str, np.ndarray],
                  bases: dict[str, np.ndarray], grid: int, budget: int = 1 << 25) -> np.ndarray:
    """N × V noiseless responses: per layer, RF-weighted local tokens and the global token,
    projected on the voxel's channel weights, mixed, then weighted over layers; z-scored."""
    import torch
    import torch.nn.functional as F

    n = store.n
    w_layers, mix, phi = truth["layer_weights"], truth["scale_mix"], truth["phi"]
    signal = np.zeros((n, len(mix)))
    for li, layer in enumerate(layers):
        vox = np.flatnonzero(w_layers[:, li] > 0)
        if vox.size == 0:
            continue
        basis = torch.from_numpy(bases[layer].astype(np.float32))  # B × C
        c, h, w = store.shapes()[layer]
        gh, gw = min(h, grid), min(w, grid)
        gx = torch.from_numpy(cell_gaussian(truth["rf_x"][vox], truth["rf_size"][vox], gw).astype(np.float32))
        gy = torch.from_numpy(cell_gaussian(truth["rf_y"][vox], truth["rf_size"][vox], gh).astype(np.float32))
        ph = torch.from_numpy(phi[vox].astype(np.float32))
        loc_read = np.empty((n, vox.size))
        n_chunk = max(1, budget // max(1, c * h * w))
        b = basis.shape[0]
        for s0 in range(0, n, n_chunk):
            s1 = min(n, s0 + n_chunk)
            loc = torch.from_numpy(np.array(store.local(layer)[s0:s1], dtype=np.float32))
            if (h, w) != (gh, gw):
                loc = F.adaptive_avg_pool2d(loc, (gh, gw))
            m = torch.einsum("nchw,bc->nbhw", loc, basis).reshape(-1, gw)  # (n·B·h) × w
            v_chunk = max(1, budget // max(1, (s1 - s0) * b * gh))
            for v0 in range(0, vox.size, v_chunk):
                v1 = min(vox.size, v0 + v_chunk)
                y = (m @ gx[v0:v1].T).reshape(s1 - s0, b * gh, v1 - v0)  # pooled along x
                q = (ph[v0:v1, :, None] * gy[v0:v1, None, :]).reshape(v1 - v0, b * gh).T  # (B·h) × v
                y.mul_(q)  # in place: (y · q) summed over k is the readout; ~2× faster than einsum here
                loc_read[s0:s1, v0:v1] = y.sum(1).double().numpy()
        glob = torch.from_numpy(np.array(store.global_(layer), dtype=np.float32))
        glob_read = ((glob @ basis.T) @ ph.T).double().numpy()  # N × v
        comp = (1.0 - mix[vox]) * _zscore(loc_read) + mix[vox] * _zscore(glob_read)
        signal[:, vox] += w_layers[vox, li] * comp
    return _zscore(signal)


def add_noise(signal: np.ndarray, snr: np.ndarray, n_repeats: int, seed: list[int], chunk: int = 4096) -> np.ndarray:
    """N × R × V float32: signal plus Gaussian noise of variance 1/snr per repeat.

    Noise is drawn per fixed voxel chunk from its own stream, so the result does not
    depend on memory limits.
    """
    n, v = signal.shape
    out = np.empty((n, n_repeats, v), np.float32)
    sd = (1.0 / np.sqrt(snr)).astype(np.float32)
    for i, v0 in enumerate(range(0, v, chunk)):
        v1 = min(v, v0 + chunk)
        rng = np.random.default_rng([*seed, i])
        noise = rng.standard_normal((n, n_repeats, v1 - v0), dtype=np.float32)
        out[:, :, v0:v1] = signal[:, None, v0:v1].astype(np.float32) + sd[None, None, v0:v1] * noise
    return out


def known_noise_ceiling_r(snr: np.ndarray | float, n_repeats: int) -> np.ndarray:
    """Expected Pearson r between the true signal and the R-repeat average: sqrt(1 / (1 + 1/(snr·R)))."""
    return np.sqrt(1.0 / (1.0 + 1.0 / (np.asarray(snr, np.float64) * n_repeats)))


@dataclass
class SubjectData:
    """One generated subject: measured data and its truth."""

    repeats: np.ndarray  #: N × R × V float32
    truth: GroundTruth

    @property
    def responses(self) -> np.ndarray:
        return self.repeats.mean(1)


def generate_subject(d: BrainDesign, store: TokenStore, backbone: str, subject_index: int) -> SubjectData:
    """Plant the truth for one subject and read it out of ``store`` (the generator backbone's tokens)."""
    layers = store.layers
    t = voxel_truth(d, layers, subject_index)
    bases = {layer: channel_basis(d, i, store.shapes()[layer][0]) for i, layer in enumerate(layers)}
    signal = render_signal(store, layers, t, bases, d.readout_grid)
    repeats = add_noise(signal, t["snr"], d.n_repeats, [d.seed, 7, subject_index])
    rois = np.asarray(d.rois)[t["k"]]
    per_roi = np.concatenate([np.arange(d.voxels_per_roi)] * len(d.rois))
    ids = np.asarray([f"{r}_{i:05d}" for r, i in zip(rois, per_roi, strict=True)])
    roi_pos = d.roi_layer_pos(len(layers))
    truth = GroundTruth(
        voxel_ids=ids, rois=rois, roi_names=tuple(d.rois), roi_level=d.roi_levels(),
        roi_layer_pos={r: float(roi_pos[i]) for i, r in enumerate(d.rois)}, hierarchy_slope=d.hierarchy_slope(len(layers)),
        layers=tuple(layers), backbone=backbone, layer_weights=t["layer_weights"], layer_pos=t["layer_pos"],
        layer_index=t["layer_weights"].argmax(1), rf_x=t["rf_x"], rf_y=t["rf_y"], rf_size=t["rf_size"],
        scale_mix=t["scale_mix"], snr=t["snr"], n_repeats=d.n_repeats,
        noise_ceiling_r=known_noise_ceiling_r(t["snr"], d.n_repeats), xyz=t["xyz"], weight_basis=t["phi"],
        channel_basis=bases, signal=signal.astype(np.float32),
        meta={"generator_version": GENERATOR_VERSION, "design": {f.name: getattr(d, f.name) for f in fields(d)},
              "subject_index": subject_index, "tokens_key": store.key},
    )
    return SubjectData(repeats=repeats, truth=truth)
