"""Bring-your-own voxel data without writing a plugin: a folder of images plus arrays.

Layout (one subject)::

    <root>/images/*.{jpg,png,…}   name order = response rows
    <root>/responses.npy          stimuli × voxels, or stimuli × repeats × voxels (NaN = missing repeat)
    <root>/voxels.csv             one row per voxel: roi (required), x, y, z (optional, mm), voxel_id (optional);
                                  other columns are kept in the voxel table
    <root>/split.json             optional {"test": [image file names]}; else a seeded random test split

Several subjects sharing the images: ``<root>/images/`` plus one folder per subject
(``<root>/<subject>/responses.npy`` and ``voxels.csv``); subjects are those folders.
With a repeats axis the noise ceiling is the Spearman–Brown corrected split-half
reliability (``ceiling="split_half"``) or NSD's ncsnr formula over the test images
(``ceiling="ncsnr"``), as ``sqrt`` on the r scale. Voxels with NaN/inf responses are
excluded and counted. :func:`write_folder` writes this layout (e.g. to export a synthetic brain).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.contracts import Stimuli, VoxelDataset, VoxelTargets
from harness.errors import DataError
from harness_datasets.specs import FOLDER, FolderArgs
from harness_datasets.stimuli import files_digest, image_files
from harness_datasets.voxels import exclude_nonfinite, nanmean_repeats

if TYPE_CHECKING:  # pandas loads with the data, not when a dataset is listed or checked
    import pandas as pd

LAYOUT = ("<root>/images/* (name order = rows), <root>[/<subject>]/responses.npy (stimuli×voxels or "
          "stimuli×repeats×voxels), <root>[/<subject>]/voxels.csv (roi[, x, y, z, voxel_id]), optional <root>/split.json")


def write_folder(root: Path, stimuli: Stimuli, responses: np.ndarray, voxels: pd.DataFrame,
                 test_ids: list[str] | None = None) -> Path:
    """Write stimuli (as PNG), responses and the voxel table in the folder layout."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(stimuli))))
    names = []
    for i in range(len(stimuli)):
        name = f"{i:0{width}d}_{Path(stimuli.ids[i]).stem}.png"
        stimuli.load(i).save(root / "images" / name)
        names.append(name)
    np.save(root / "responses.npy", np.asarray(responses))
    voxels.to_csv(root / "voxels.csv", index=False)
    if test_ids is not None:
        pos = {s: i for i, s in enumerate(stimuli.ids)}
        (root / "split.json").write_text(json.dumps({"test": sorted(names[pos[s]] for s in test_ids)}))
    return root


class FolderVoxels(VoxelDataset):
    spec = FOLDER
    args: FolderArgs

    @property
    def root(self) -> Path:
        return Path(self.args.root).expanduser()

    def _subject_dirs(self) -> dict[str, Path]:
        if (self.root / "responses.npy").is_file():
            return {"sub01": self.root}
        subs = {p.name: p for p in sorted(self.root.iterdir()) if p.is_dir() and (p / "responses.npy").is_file()} \
            if self.root.is_dir() else {}
        if not subs:
            raise DataError(f"{self.root / 'responses.npy'}: missing, and no <subject>/responses.npy (expected {LAYOUT})")
        return subs

    def unavailable_reason(self) -> str | None:
        if not self.root.is_dir():
            return f"{self.root}: missing (expected {LAYOUT})"
        if not (self.root / "images").is_dir():
            return f"{self.root / 'images'}: missing (expected {LAYOUT})"
        try:
            dirs = self._subject_dirs()
        except DataError as exc:
            return str(exc)
        for d in dirs.values():
            if not (d / "voxels.csv").is_file():
                return f"{d / 'voxels.csv'}: missing (expected {LAYOUT})"
        return None

    @cached_property
    def _paths(self) -> list[Path]:
        return image_files(self.root / "images", LAYOUT)

    @cached_property
    def _stimuli(self) -> Stimuli:
        return Stimuli.from_files(self._paths, ids=[p.name for p in self._paths])

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        return list(self._subject_dirs())

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        names = [p.name for p in self._paths]
        f = self.root / "split.json"
        if f.is_file():
            try:
                test = set(json.loads(f.read_text())["test"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{f}: expected {{\"test\": [image file names]}} ({exc})") from exc
            unknown = sorted(test - set(names))
            if unknown:
                raise DataError(f"{f}: test images not in {self.root / 'images'}: {unknown[:5]}")
            is_test = np.array([n in test for n in names])
            return np.flatnonzero(~is_test), np.flatnonzero(is_test)
        perm = np.random.default_rng(self.args.seed).permutation(len(names))
        n_test = min(len(names) - 2, max(2, round(self.args.test_fraction * len(names))))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])

    def _read_voxels(self, path: Path, n_vox: int) -> pd.DataFrame:
        import pandas as pd

        if not path.is_file():
            raise DataError(f"{path}: missing (expected {LAYOUT})")
        try:
            vox = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from exc
        if "roi" not in vox.columns:
            raise DataError(f"{path}: no 'roi' column (columns: {list(vox.columns)}); expected {LAYOUT}")
        if len(vox) != n_vox:
            raise DataError(f"{path}: {len(vox)} rows but responses.npy has {n_vox} voxels")
        for c in ("x", "y", "z"):
            if c in vox.columns and not pd.api.types.is_numeric_dtype(vox[c]):
                raise DataError(f"{path}: column {c!r} must be numeric (mm)")
        if "voxel_id" not in vox.columns:
            vox.insert(0, "voxel_id", [f"v{i:06d}" for i in range(n_vox)])
        vox["voxel_id"] = vox["voxel_id"].astype(str)
        vox["roi"] = vox["roi"].astype(str)
        return vox

    def targets(self, subject: str) -> VoxelTargets:
        dirs = self._subject_dirs()
        if subject not in dirs:
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (have {', '.join(dirs)})")
        d = dirs[subject]
        path = d / "responses.npy"
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
        n = len(self.stimuli())
        if arr.ndim not in (2, 3):
            raise DataError(f"{path}: shape {arr.shape}; expected stimuli×voxels or stimuli×repeats×voxels")
        if arr.shape[0] != n:
            raise DataError(f"{path}: {arr.shape[0]} rows but {n} images in {self.root / 'images'}")
        arr = arr.astype(np.float64)
        repeats = arr if arr.ndim == 3 else None
        responses = nanmean_repeats(arr) if repeats is not None else arr
        vox = self._read_voxels(d / "voxels.csv", arr.shape[-1])
        responses, vox, repeats, n_excl = exclude_nonfinite(responses, vox, repeats, str(path))
        train, test = self.split()
        ceiling = None
        if repeats is not None and repeats.shape[1] >= 2 and self.args.ceiling != "none":
            from harness.kit.ceilings import nc_to_r, ncsnr_ceiling, split_half_reliability

            nc = split_half_reliability(repeats) if self.args.ceiling == "split_half" else ncsnr_ceiling(repeats, test)
            ceiling = nc_to_r(nc)
        order = list(self.args.roi_order) or list(dict.fromkeys(vox["roi"]))
        missing = sorted(set(vox["roi"]) - set(order))
        if missing:
            raise DataError(f"dataset {self.ctx.entry.name!r}: args.roi_order lacks ROIs {missing} found in {d / 'voxels.csv'}")
        return VoxelTargets(responses=responses.astype(np.float32), train_idx=train, test_idx=test, voxels=vox,
                            repeats=None if repeats is None else repeats.astype(np.float32), noise_ceiling_r=ceiling,
                            roi_levels={r: float(i) for i, r in enumerate(order)}, n_excluded=n_excl)

    def digest(self) -> str:
        files = []
        for d in self._subject_dirs().values():
            files += [d / "responses.npy", d / "voxels.csv"]
        if (self.root / "split.json").is_file():
            files.append(self.root / "split.json")
        return hashlib.sha256((self.stimuli().digest + files_digest(files)).encode()).hexdigest()
