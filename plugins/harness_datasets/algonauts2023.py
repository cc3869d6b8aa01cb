"""Algonauts 2023 challenge data (NSD-derived, fsaverage vertices of the challenge space), one subject per entry.

Layout under ``<root>/subjXX`` (``root`` default ``$HARNESS_DATA_ROOT/algonauts2023``)::

    training_split/training_fmri/{lh,rh}_training_fmri.npy   training images × vertices (z-scored, repeat-averaged)
    training_split/training_images/*.png                     name order = rows (train-0001_nsd-00013.png …)
    test_split/test_images/*.png
    test_split/test_fmri/{lh,rh}_test_fmri.npy               optional (released after the challenge)
    test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy       optional per-vertex NC (fraction; 0–100 scale is divided by 100)
    roi_masks/{lh,rh}.<name>_challenge_space.npy             integer labels per challenge vertex
    roi_masks/mapping_<name>.npy                             label → name dict (read without unpickling code)
    roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy        which fsaverage vertices the challenge kept

With ``test_fmri`` present the stimuli are training + test images and the test split is
the challenge's; otherwise a seeded ``test_fraction`` of the training images is held out
and there is no ceiling. The challenge's noise-ceiling formula is NSD's
NC = ncsnr² / (ncsnr² + 1/n) over the test images; its per-vertex NC files are read as is
and given as ``noise_ceiling_r = sqrt(NC)``; the challenge score is then
:func:`harness.kit.ceilings.noise_normalised_r2` (100 · r² / NC, r < 0 → 0, capped at 100).
Vertex coordinates need an fsaverage FreeSurfer subject folder (``fsaverage``: its
``surf/{lh,rh}.<surface>``); without one the voxel table has ``fsaverage_index`` but no x, y, z.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.contracts import Stimuli, VoxelDataset, VoxelTargets
from harness.errors import DataError
from harness_datasets.algonauts2019 import concat_stimuli
from harness_datasets.nsd_labels import (
    LABELS,
    LEVELS,
    label_names,
    read_mapping_npy,
    surface_coords,
)
from harness_datasets.roots import data_folder
from harness_datasets.specs import ALGONAUTS2023, A23Args
from harness_datasets.stimuli import files_digest, image_files
from harness_datasets.voxels import exclude_nonfinite

if TYPE_CHECKING:
    from harness.kit.fetch import FetchPlan

LAYOUT = ("<root>/subjXX/training_split/training_fmri/{lh,rh}_training_fmri.npy, training_split/training_images/*.png, "
          "test_split/test_images/*.png, roi_masks/{lh,rh}.<roi>_challenge_space.npy (+ mapping_<roi>.npy), "
          "optional test_split/test_fmri/{lh,rh}_test_fmri.npy and test_split/noise_ceiling/{lh,rh}_noise_ceiling.npy")


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what}; expected {LAYOUT})")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc


class Algonauts2023(VoxelDataset):
    spec = ALGONAUTS2023
    args: A23Args

    @property
    def root(self) -> Path:
        return data_folder(self.ctx, self.args.root, "algonauts2023", LAYOUT)

    @property
    def sid(self) -> str:
        return f"subj{self.args.subject:02d}"

    @property
    def subj_dir(self) -> Path:
        return self.root / self.sid

    def _fmri(self, split: str, hemi: str) -> Path:
        return self.subj_dir / f"{split}_split" / f"{split}_fmri" / f"{hemi}_{split}_fmri.npy"

    @property
    def has_test_fmri(self) -> bool:
        return all(self._fmri("test", h).is_file() for h in self.args.hemis)

    def unavailable_reason(self) -> str | None:
        try:
            d = self.subj_dir
        except DataError as exc:
            return str(exc)
        for p in [self._fmri("training", h) for h in self.args.hemis] + [d / "training_split" / "training_images",
                                                                          d / "roi_masks"]:
            if not p.exists():
                return f"{p}: missing (expected {LAYOUT})"
        return None

    # -- stimuli -------------------------------------------------------------------------
    @cached_property
    def _image_paths(self) -> dict[str, list[Path]]:
        out = {"training": image_files(self.subj_dir / "training_split" / "training_images", LAYOUT)}
        if self.has_test_fmri:
            out["test"] = image_files(self.subj_dir / "test_split" / "test_images", LAYOUT)
        return out

    @cached_property
    def _stimuli(self) -> Stimuli:
        parts = [(split, Stimuli.from_files(paths, ids=[p.name for p in paths])) for split, paths in self._image_paths.items()]
        return concat_stimuli(parts) if len(parts) > 1 else parts[0][1]

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        return [self.sid]

    # -- targets -------------------------------------------------------------------------
    def _labels(self, name: str, hemi: str, n_vertices: int) -> np.ndarray:
        masks = self.subj_dir / "roi_masks"
        path = masks / f"{hemi}.{name}_challenge_space.npy"
        lab = _load_npy(path, f"ROI labels {name!r}")
        if lab.shape != (n_vertices,):
            raise DataError(f"{path}: shape {lab.shape}, expected ({n_vertices},) like {self._fmri('training', hemi).name}")
        mapping = masks / f"mapping_{name}.npy"
        table = read_mapping_npy(mapping) if mapping.is_file() else LABELS.get(name)
        if table is None:
            raise DataError(f"{mapping}: missing and no built-in names for {name!r} (expected {LAYOUT})")
        return label_names(lab, table, str(path))

    def _hemi(self, hemi: str) -> dict[str, Any]:
        import pandas as pd

        a = self.args
        train = _load_npy(self._fmri("training", hemi), "training fMRI")
        n_train = len(self._image_paths["training"])
        if train.ndim != 2 or train.shape[0] != n_train:
            raise DataError(f"{self._fmri('training', hemi)}: shape {train.shape}, expected {n_train} training images × vertices")
        blocks = [train]
        if "test" in self._image_paths:
            test = _load_npy(self._fmri("test", hemi), "test fMRI")
            n_test = len(self._image_paths["test"])
            if test.shape != (n_test, train.shape[1]):
                raise DataError(f"{self._fmri('test', hemi)}: shape {test.shape}, expected ({n_test}, {train.shape[1]})")
            blocks.append(test)
        n_v = train.shape[1]
        cols = {name: self._labels(name, hemi, n_v) for name in dict.fromkeys((*a.label_files, a.roi_column))}
        roi = cols[a.roi_column]
        keep = np.isin(roi, a.rois) if a.rois else np.ones(n_v, bool)
        vox = pd.DataFrame({"voxel_id": [f"{hemi}_{i:05d}" for i in np.flatnonzero(keep)], "roi": roi[keep], "hemi": hemi})
        fs_mask_path = self.subj_dir / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy"
        if fs_mask_path.is_file():
            fs_mask = _load_npy(fs_mask_path, "fsaverage vertex mask")
            fs_index = np.flatnonzero(fs_mask > 0)
            if len(fs_index) != n_v:
                raise DataError(f"{fs_mask_path}: {len(fs_index)} vertices kept but the fMRI has {n_v}")
            vox["fsaverage_index"] = fs_index[keep]
            if a.fsaverage:
                surf = Path(a.fsaverage).expanduser() / "surf" / f"{hemi}.{a.surface}"
                xyz = surface_coords(surf, len(fs_mask))[fs_index[keep]]
                if hemi == "rh":
                    xyz = xyz + np.array([a.hemi_offset_mm, 0.0, 0.0])
                vox["x"], vox["y"], vox["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        elif a.fsaverage:
            raise DataError(f"{fs_mask_path}: missing, needed to place challenge vertices on the fsaverage surface")
        for name, vals in cols.items():
            vox[name] = vals[keep]
        nc = None
        nc_path = self.subj_dir / "test_split" / "noise_ceiling" / f"{hemi}_noise_ceiling.npy"
        if "test" in self._image_paths and nc_path.is_file():
            nc = _load_npy(nc_path, "noise ceiling").astype(np.float64)
            if nc.shape != (n_v,):
                raise DataError(f"{nc_path}: shape {nc.shape}, expected ({n_v},)")
            if np.nanmax(nc) > 1.0:  # NSD's percent scale
                nc = nc / 100.0
            nc = nc[keep]
        return {"responses": np.concatenate(blocks)[:, keep].astype(np.float64), "voxels": vox, "nc": nc}

    @cached_property
    def _targets(self) -> VoxelTargets:
        import pandas as pd

        from harness.kit.ceilings import nc_to_r

        hemis = [self._hemi(h) for h in self.args.hemis]
        responses = np.concatenate([h["responses"] for h in hemis], axis=1)
        vox = pd.concat([h["voxels"] for h in hemis], ignore_index=True)
        has_nc = all(h["nc"] is not None for h in hemis)
        nc = np.concatenate([h["nc"] for h in hemis]) if has_nc else None
        responses, vox, _, n_excl, nc = exclude_nonfinite(responses, vox, None, str(self.subj_dir), nc)
        train, test = self.split()
        return VoxelTargets(responses=responses.astype(np.float32), train_idx=train, test_idx=test, voxels=vox,
                            noise_ceiling_r=None if nc is None else nc_to_r(nc),
                            roi_levels={r: LEVELS[r] for r in dict.fromkeys(vox["roi"]) if r in LEVELS}, n_excluded=n_excl)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        n_train = len(self._image_paths["training"])
        if "test" in self._image_paths:
            return np.arange(n_train), n_train + np.arange(len(self._image_paths["test"]))
        perm = np.random.default_rng(self.args.seed).permutation(n_train)
        n_test = min(n_train - 2, max(2, round(self.args.test_fraction * n_train)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])

    def targets(self, subject: str) -> VoxelTargets:
        if subject != self.sid:
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only {self.sid!r})")
        return self._targets

    def fetch_plan(self) -> FetchPlan:
        from harness.kit.fetch import FetchPlan

        return FetchPlan(folder=self.root, note=(
            "Algonauts 2023 data are handed out after registration (http://algonauts.csail.mit.edu, 2023 challenge) under "
            f"the NSD terms; there is no public URL to fetch. Unpack the archive so that {self.subj_dir} holds {LAYOUT}"))

    def digest(self) -> str:
        files = [self._fmri("training", h) for h in self.args.hemis]
        if self.has_test_fmri:
            files += [self._fmri("test", h) for h in self.args.hemis]
        files += sorted((self.subj_dir / "roi_masks").glob("*.npy"))
        h = hashlib.sha256((self.stimuli().digest + files_digest(files)).encode())
        h.update(json.dumps(self.args.model_dump(mode="json"), sort_keys=True).encode())
        return h.hexdigest()
