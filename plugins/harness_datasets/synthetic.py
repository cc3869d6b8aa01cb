"""A synthetic voxel brain with planted truth, read out of a registry backbone's tokens.

Each ROI reads one layer of the generator backbone (deeper ROIs read deeper
layers), each voxel a Gaussian receptive field at a planted location of that
layer's local tokens with random channel weights, plus Gaussian noise over R
repeats at a set SNR. Because the signal variance is normalised to 1, the
noise ceiling is known exactly: r_max = sqrt(1 / (1 + 1 / (snr · R))).
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import pandas as pd

from harness.contracts import Dataset, Stimuli, VoxelTargets
from harness.errors import DataError
from harness.specs import VOXELS, PluginArgs, PluginSpec


class SyntheticArgs(PluginArgs):
    #: registry backbone whose tokens generate the responses
    backbone: str = "mobilenet_v2_random"
    n_stimuli: int = 240
    image_size: int = 64
    n_subjects: int = 2
    rois: tuple[str, ...] = ("V1", "V2", "V4", "IT")
    voxels_per_roi: int = 50
    #: signal-to-noise variance ratio of a single repeat
    snr: float = 1.0
    n_repeats: int = 2
    rf_sigma: float = 0.12  #: receptive-field size, fraction of the image
    test_fraction: float = 0.25
    seed: int = 0


def procedural_images(n: int, size: int, seed: int) -> np.ndarray:
    """Oriented gratings under Gaussian windows plus coloured blobs: varied low- and mid-level content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = np.zeros((size, size, 3))
        for _ in range(rng.integers(2, 5)):
            theta, freq = rng.uniform(0, np.pi), rng.uniform(2, 12)
            cx, cy, s = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.35)
            grating = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
            window = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
            img += (grating * window)[..., None] * rng.uniform(-1, 1, 3)
        img = 0.5 + 0.35 * img / max(1e-6, np.abs(img).max())
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


class SyntheticVoxels(Dataset):
    spec = PluginSpec(
        id="synthetic_voxels",
        kind="dataset",
        version="1",
        summary="synthetic voxels with planted layer, receptive field and weights (known noise ceiling)",
        args=SyntheticArgs,
        produces=frozenset({VOXELS}),
    )
    args: SyntheticArgs
    target_kind = "voxels"  # type: ignore[assignment]

    @cached_property
    def _stimuli(self) -> Stimuli:
        a = self.args
        return Stimuli.from_array(procedural_images(a.n_stimuli, a.image_size, a.seed))

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        return [f"sub{i + 1:02d}" for i in range(self.args.n_subjects)]

    def digest(self) -> str:
        return hashlib.sha256((self.stimuli().digest + self.args.model_dump_json()).encode()).hexdigest()

    def noise_ceiling_r(self) -> float:
        return float(np.sqrt(1.0 / (1.0 + 1.0 / (self.args.snr * self.args.n_repeats))))

    def targets(self, subject: str) -> VoxelTargets:
        a = self.args
        if subject not in self.subjects():
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r}")
        if self.ctx.tokens_for is None:
            raise DataError(f"dataset {self.ctx.entry.name!r} needs the runner's token access to generate responses")
        store = self.ctx.tokens_for(a.backbone, self.stimuli())
        layers = store.layers
        rng = np.random.default_rng([a.seed, self.subjects().index(subject)])
        n_roi = len(a.rois)
        # ROI k reads a layer evenly spaced from the first to the last: a planted hierarchy slope
        roi_layer = np.round(np.linspace(0, len(layers) - 1, n_roi)).astype(int)
        signals, rows = [], []
        for k, roi in enumerate(a.rois):
            layer = layers[roi_layer[k]]
            local = np.asarray(store.local(layer), np.float32)  # N×C×H×W
            n, c, h, w = local.shape
            gy, gx = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
            for v in range(a.voxels_per_roi):
                cx, cy = rng.uniform(0.15, 0.85, 2)
                rf = np.exp(-((gx[None, :] - cx) ** 2 + (gy[:, None] - cy) ** 2) / (2 * a.rf_sigma**2))
                rf /= rf.sum()
                wc = rng.standard_normal(c) / np.sqrt(c)
                s = np.einsum("nchw,hw,c->n", local, rf, wc)
                s = (s - s.mean()) / (s.std() + 1e-12)
                signals.append(s)
                rows.append({"voxel_id": f"{roi}_{v:04d}", "roi": roi, "x": cx, "y": cy, "z": float(k),
                             "true_layer": layer, "true_layer_index": int(roi_layer[k]), "rf_x": cx, "rf_y": cy})
        signal = np.stack(signals, axis=1)  # N×V, unit variance
        noise_sd = 1.0 / np.sqrt(a.snr)
        reps = signal[:, None, :] + noise_sd * rng.standard_normal((signal.shape[0], a.n_repeats, signal.shape[1]))
        perm = np.random.default_rng(a.seed).permutation(a.n_stimuli)
        n_test = max(2, int(round(a.test_fraction * a.n_stimuli)))
        voxels = pd.DataFrame(rows)
        return VoxelTargets(
            responses=reps.mean(1).astype(np.float32),
            train_idx=np.sort(perm[n_test:]),
            test_idx=np.sort(perm[:n_test]),
            voxels=voxels,
            repeats=reps.astype(np.float32),
            noise_ceiling_r=np.full(signal.shape[1], self.noise_ceiling_r()),
            roi_levels={r: float(i) for i, r in enumerate(a.rois)},
        )
