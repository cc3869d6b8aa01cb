"""The synthetic ground-truth brain: voxels whose layer, receptive field, scale mix and
channel weights are planted, read out of a registry backbone's tokens, with known noise.

Why: every head and metric can be checked against a brain whose answers are known.

Model (all truth in :class:`~harness_datasets.synthetic_brain.GroundTruth`)
-----------------------------------------------------------------------------
* **Sheet.** ``len(rois)`` ROIs, ordered (e.g. V1 → V2 → V4 → IT), lie side by side as
  bands ``roi_width_mm`` wide along x of a ``sheet_height_mm`` tall cortical sheet;
  ``sheet="3d"`` folds it (z = fold_mm · sin(2π x / fold_period_mm)); ``roi_layout="mixed"``
  spreads every ROI over the whole sheet instead (intermixed, like cell types in one patch). Each subject samples
  ``voxels_per_roi`` voxel positions uniformly per band (own seed per subject); the
  *fields* below depend on ``seed`` only, so all subjects share one brain template.
  Voxel coordinates (mm) are the voxel table's ``x, y, z``.
* **Hierarchy.** ROI k's centre reads layer index
  ``p_k = (d0 + (d1 − d0)·k/(K−1))·(L−1)`` with ``(d0, d1) = depth_range`` and L the
  backbone's layer count: the planted hierarchy slope is ``(d1 − d0)(L−1)/(K−1)`` layer
  indices per ROI level. A voxel's layer position adds ``layer_jitter`` × a smooth field;
  ``layer_mix_sd = 0`` reads the one nearest layer, ``> 0`` a Gaussian mix over layers.
* **Retinotopy.** RF centre (``rf_x``, ``rf_y`` ∈ [margin, 1−margin], fractions of the
  network's input crop, y down) follows the within-ROI position, mirrored in every other
  ROI so the map is continuous across borders; RF sigma ``rf_size`` grows geometrically
  from ``rf_size[0]`` (first ROI) to ``rf_size[1]`` (last) and with eccentricity.
* **Scale mix.** ``scale_mix`` g ∈ [0, 1] rises linearly over ROIs from ``global_mix[0]``
  to ``global_mix[1]``: response = (1−g)·z(local RF readout) + g·z(global-token readout).
* **Channel weights** of voxel v on layer l are ``Φ_v @ B_l``: ``n_basis`` smooth fields
  Φ over the sheet (length ``weight_length_mm``) times random channel directions B_l. With
  ``roi_channel_share`` s > 0, Φ_v = √(1−s)·(smooth fields) + √s·a_k with one random pattern
  a_k per ROI: ROIs then differ in the channels they read (the truth for channel clustering).
* **Noise.** The noiseless signal is z-scored over stimuli; each of ``n_repeats``
  repeats adds Gaussian noise of variance ``1/snr`` (per voxel if ``snr_spread > 0``).
  The known ceiling (expected r between true signal and repeat average) is
  ``sqrt(1 / (1 + 1/(snr·R)))`` = ``VoxelTargets.noise_ceiling_r``.

Stimuli: procedural gratings/blobs (``stimuli="procedural"``) or another registry dataset's
images (``stimuli="cowley_v4_201025"``, ``"cichy92"`` …). Generation is deterministic per
``seed`` and is saved, with all truth, under ``<HARNESS_HOME>/cache/synthetic/<key>/`` (key:
design, generator version and the generator tokens' content key).

API for heads, metrics and tests
--------------------------------
``ds.targets(subject)`` → :class:`VoxelTargets`; its voxel table has ``voxel_id, roi,
x, y, z`` plus ``true_layer_index, true_layer, true_layer_pos, true_rf_x, true_rf_y,
true_rf_size, true_scale_mix, true_snr`` (metrics may use the ``true_*`` columns; heads
must not). ``ds.ground_truth(subject)`` → :class:`GroundTruth` with per voxel
``layer_weights`` (V×L), ``layer_index``, ``layer_pos``, ``rf_x/rf_y/rf_size``,
``scale_mix``, ``snr``, ``noise_ceiling_r``, ``xyz``, ``channel_weights(layer)`` (V×C),
the clean ``signal`` (N×V); per ROI ``roi_level`` and ``roi_layer_pos``; and the planted
``hierarchy_slope``. The RDM twin ``synthetic_rdms`` gives 1 − Pearson RDMs of the same
ROIs (one "all" job over subjects) and ``ds.clean_rdms()`` for their noiseless versions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.contracts import RDMDataset, RDMTargets, Stimuli, VoxelDataset, VoxelTargets
from harness.errors import DataError
from harness_datasets.specs import SYNTHETIC_RDMS, SYNTHETIC_VOXELS, SyntheticArgs
from harness_datasets.synthetic_brain import (
    GENERATOR_VERSION,
    GroundTruth,
    SubjectData,
    generate_subject,
)


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


class SyntheticVoxels(VoxelDataset):
    spec = SYNTHETIC_VOXELS
    args: SyntheticArgs

    # -- stimuli -----------------------------------------------------------------------
    @cached_property
    def _stimuli(self) -> Stimuli:
        a = self.args
        if a.stimuli == "procedural":
            return Stimuli.from_array(procedural_images(a.n_stimuli, a.image_size, a.seed))
        if a.stimuli == self.ctx.entry.name:
            raise DataError(f"dataset {self.ctx.entry.name!r}: args.stimuli names the entry itself")
        if self.ctx.stimuli_for is None:
            raise DataError(f"dataset {self.ctx.entry.name!r}: stimuli from {a.stimuli!r} need the runner's dataset access")
        return self.ctx.stimuli_for(a.stimuli)

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def unavailable_reason(self) -> str | None:
        if self.args.stimuli == "procedural":
            return None
        try:
            self.stimuli()
        except Exception as exc:
            return f"stimuli from {self.args.stimuli!r}: {exc}"
        return None

    def _subject_ids(self) -> list[str]:
        return [f"sub{i + 1:02d}" for i in range(self.args.n_subjects)]

    def subjects(self) -> list[str]:
        return self._subject_ids()

    def digest(self) -> str:
        blob = json.dumps({"v": GENERATOR_VERSION, "args": self.args.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256((self.stimuli().digest + blob).encode()).hexdigest()

    # -- generation (cached in memory and on disk) ------------------------------------
    def _subject_index(self, subject: str) -> int:
        subs = self._subject_ids()
        if subject not in subs:
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (have {', '.join(subs)})")
        return subs.index(subject)

    @cached_property
    def _store(self):
        if self.ctx.tokens_for is None:
            raise DataError(f"dataset {self.ctx.entry.name!r} needs the runner's token access to generate responses")
        return self.ctx.tokens_for(self.args.backbone, self.stimuli())

    def _folder(self, subject_index: int) -> Path:
        d = self.args.design()
        blob = json.dumps({"v": GENERATOR_VERSION, "design": d.__dict__, "tokens": self._store.key,
                           "backbone": self.args.backbone}, sort_keys=True, default=list)
        key = hashlib.sha256(blob.encode()).hexdigest()[:24]
        return self.ctx.settings.cache_dir / "synthetic" / key / f"subject{subject_index:03d}"

    @cached_property
    def _generated(self) -> dict[int, SubjectData]:
        return {}

    def subject_data(self, subject: str) -> SubjectData:
        """Measured repeats and truth of one subject (generated once, then read back)."""
        i = self._subject_index(subject)
        if i in self._generated:
            return self._generated[i]
        folder = self._folder(i)
        rep_file = folder / "repeats.npy"
        if rep_file.is_file() and (folder / "truth.json").is_file():
            data = SubjectData(repeats=np.load(rep_file), truth=GroundTruth.load(folder))
        else:
            data = generate_subject(self.args.design(), self._store, self.args.backbone, i)
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            data.truth.save(tmp)
            np.save(tmp / "repeats.npy", data.repeats)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        self._generated[i] = data
        return data

    def ground_truth(self, subject: str) -> GroundTruth:
        return self.subject_data(subject).truth

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train_idx, test_idx): one seeded permutation shared by all subjects."""
        n = len(self.stimuli())
        perm = np.random.default_rng([self.args.seed, 8]).permutation(n)
        n_test = min(n - 2, max(2, round(self.args.test_fraction * n)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])

    def targets(self, subject: str) -> VoxelTargets:
        import pandas as pd

        data = self.subject_data(subject)
        t = data.truth
        voxels = pd.DataFrame({
            "voxel_id": t.voxel_ids, "roi": t.rois, "x": t.xyz[:, 0], "y": t.xyz[:, 1], "z": t.xyz[:, 2],
            "true_layer_index": t.layer_index, "true_layer": np.asarray(t.layers)[t.layer_index],
            "true_layer_pos": t.layer_pos, "true_rf_x": t.rf_x, "true_rf_y": t.rf_y, "true_rf_size": t.rf_size,
            "true_scale_mix": t.scale_mix, "true_snr": t.snr,
        })
        train, test = self.split()
        return VoxelTargets(responses=data.responses.astype(np.float32), train_idx=train, test_idx=test, voxels=voxels,
                            repeats=data.repeats, noise_ceiling_r=t.noise_ceiling_r.copy(), roi_levels=dict(t.roi_level))


class SyntheticRDMs(RDMDataset, SyntheticVoxels):  # type: ignore[misc]
    """The same brain seen through RSA: per ROI, each subject's 1 − Pearson RDM of its voxel patterns."""

    spec = SYNTHETIC_RDMS

    def subjects(self) -> list[str]:
        return ["all"]

    def _rdms(self, clean: bool) -> dict[str, np.ndarray]:
        from harness.kit.scoring import rdm_from_features

        per_roi: dict[str, list[np.ndarray]] = {r: [] for r in self.args.rois}
        for sid in self._subject_ids():
            data = self.subject_data(sid)
            x = data.truth.signal if clean else data.responses
            for roi in self.args.rois:
                per_roi[roi].append(rdm_from_features(np.asarray(x)[:, data.truth.rois == roi].astype(np.float64)))
        return {r: np.stack(v) for r, v in per_roi.items()}

    def clean_rdms(self) -> dict[str, np.ndarray]:
        """ROI → subjects × N × N RDMs of the noiseless signal (the truth the measured RDMs estimate)."""
        return self._rdms(clean=True)

    def targets(self, subject: str) -> RDMTargets:  # type: ignore[override]
        if subject != "all":
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only 'all')")
        return RDMTargets(rdms=self._rdms(clean=False), subject_ids=self._subject_ids(),
                          roi_levels={r: float(k) for k, r in enumerate(self.args.rois)})
