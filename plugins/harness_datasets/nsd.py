"""Natural Scenes Dataset (Allen et al. 2022) read in its released layout, one subject per entry.

Layout under ``<root>`` (``$HARNESS_DATA_ROOT/nsd``; only the files of the asked subject,
space and sessions are touched)::

    nsddata/experiments/nsd/nsd_expdesign.mat     masterordering (trial → subjectim column), subjectim, sharedix
    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5  imgBrick: 73000 × 425 × 425 × 3 uint8
    nsddata_betas/ppdata/subjXX/fsaverage/<betas>/{lh,rh}.betas_sessionYY.mgh   vertices × 1 × 1 × trials
                                              .../{lh,rh}.ncsnr.mgh
    nsddata_betas/ppdata/subjXX/func1pt8mm/<betas>/betas_sessionYY.nii[.gz]      X × Y × Z × trials
                                              .../ncsnr.nii[.gz]
    nsddata/freesurfer/fsaverage/label/{lh,rh}.<name>.mgz   (+ <name>.mgz.ctab)   surface masks/labels
    nsddata/ppdata/subjXX/func1pt8mm/roi/<name>.nii.gz                             volume masks/labels
    nsddata/freesurfer/fsaverage/surf/{lh,rh}.<surface>      vertex coordinates (sphere, inflated …)

Processing: voxels are the ``mask`` label file's positive entries (default nsdgeneral),
optionally only those whose ``roi_column`` label is in ``rois``. Betas are read through
memory maps (uncompressed .mgh/.nii; .nii.gz is decompressed per session), integer betas
divided by 300 (NSD stores percent signal change × 300), z-scored per voxel within each
session, then laid out as stimuli × repeats (NaN-padded) and averaged. Stimuli are the
images shown in the loaded sessions (ids ``nsd<73k id, 1-based>``); the test split is the
shared-1000 images. Label files become voxel-table columns; ``roi`` is ``roi_column``'s
label (``other`` where unlabelled). NSD's subject-specific ROIs (prf-visualrois, floc-*) exist
in func1pt8mm; on fsaverage it ships atlas labels (nsdgeneral, streams) — map others with nsdcode and
place ``{lh,rh}.<name>.mgz`` in the label folder to use them. Coordinates: the fsaverage surface (rh shifted by
``hemi_offset_mm`` in x so hemispheres never overlap) or the volume's affine (mm).
Noise ceiling: NC = ncsnr² / (ncsnr² + mean over test images of 1/n_repeats), given as sqrt(NC).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.contracts import Stimuli, VoxelDataset, VoxelTargets
from harness.errors import DataError
from harness_datasets.nsd_labels import (
    LABELS,
    LEVELS,
    UNLABELLED,
    label_names,
    read_ctab,
    surface_coords,
)
from harness_datasets.roots import data_folder
from harness_datasets.specs import DEFAULT_LABEL_FILES, NSD_SPEC, NSDArgs
from harness_datasets.stimuli import files_digest, stimuli_from_hdf5
from harness_datasets.voxels import exclude_nonfinite, nanmean_repeats

if TYPE_CHECKING:  # pandas loads with the data, not when a dataset is listed or checked
    import pandas as pd

    from harness.kit.fetch import FetchPlan

LAYOUT = ("NSD release layout: nsddata/experiments/nsd/nsd_expdesign.mat, nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5, "
          "nsddata_betas/ppdata/subjXX/<space>/<betas>/[lh.|rh.]betas_sessionYY.(mgh|nii.gz) + ncsnr, "
          "nsddata/freesurfer/fsaverage/label/<hemi>.<roi>.mgz or nsddata/ppdata/subjXX/func1pt8mm/roi/<roi>.nii.gz")
#: NSD stores integer betas as percent signal change × 300
BETA_SCALE = 300.0


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what}; expected {LAYOUT})")
    return path


def load_image(path: Path) -> Any:
    import nibabel as nib

    try:
        return nib.load(str(_need(path, "NSD image file")), mmap=True)
    except Exception as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: not a readable MGH/NIfTI file ({exc})") from exc


def read_volume(path: Path) -> np.ndarray:
    """Whole small image (mask, label, ncsnr) as an array, singleton surface axes squeezed."""
    a = np.asarray(load_image(path).dataobj)
    return a.reshape(int(a.shape[0]), *[int(s) for s in a.shape[1:] if s != 1]) if a.ndim > 1 else a


def read_rows(path: Path, index: Any) -> np.ndarray:
    """``index`` rows of a beta file (vertices or voxels × trials) via a memory map, in float32 units."""
    img = load_image(path)
    proxy = img.dataobj
    raw = proxy.get_unscaled() if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
    if raw.ndim == 4 and isinstance(index, np.ndarray) and index.ndim == 1:  # surface: V × 1 × 1 × T
        rows = np.asarray(raw[index, 0, 0, :])
    else:
        rows = np.asarray(raw[index])
    out = rows.astype(np.float32)
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    if (slope, inter) != (1.0, 0.0):
        out = out * slope + inter
    if np.issubdtype(raw.dtype, np.integer):
        out /= BETA_SCALE
    return out


def read_expdesign(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        m = loadmat(str(_need(path, "experimental design")), variable_names=["masterordering", "subjectim", "sharedix"])
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    missing = [k for k in ("masterordering", "subjectim", "sharedix") if k not in m]
    if missing:
        raise DataError(f"{path}: no variable(s) {missing}; expected masterordering, subjectim, sharedix")
    return {"masterordering": np.asarray(m["masterordering"]).ravel().astype(np.int64),
            "subjectim": np.asarray(m["subjectim"]).astype(np.int64),
            "sharedix": np.asarray(m["sharedix"]).ravel().astype(np.int64)}


class NSD(VoxelDataset):
    spec = NSD_SPEC
    args: NSDArgs

    # -- paths -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return data_folder(self.ctx, self.args.root, "nsd", LAYOUT)

    @property
    def sid(self) -> str:
        return f"subj{self.args.subject:02d}"

    @property
    def betas_dir(self) -> Path:
        return self.root / "nsddata_betas" / "ppdata" / self.sid / self.args.space / self.args.beta_version

    @property
    def surface_space(self) -> bool:
        return self.args.space == "fsaverage"

    def expdesign_path(self) -> Path:
        return self.root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"

    def stimuli_path(self) -> Path:
        return self.root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"

    def label_path(self, name: str, hemi: str | None) -> Path:
        if self.surface_space:
            return self.root / "nsddata" / "freesurfer" / "fsaverage" / "label" / f"{hemi}.{name}.mgz"
        d = self.root / "nsddata" / "ppdata" / self.sid / "func1pt8mm" / "roi"
        return d / f"{name}.nii.gz" if (d / f"{name}.nii.gz").is_file() or not (d / f"{name}.nii").is_file() else d / f"{name}.nii"

    def _vol_file(self, stem: str) -> Path:
        p = self.betas_dir / f"{stem}.nii"
        return p if p.is_file() else self.betas_dir / f"{stem}.nii.gz"

    def beta_path(self, session: int, hemi: str | None) -> Path:
        if self.surface_space:
            return self.betas_dir / f"{hemi}.betas_session{session:02d}.mgh"
        return self._vol_file(f"betas_session{session:02d}")

    def ncsnr_path(self, hemi: str | None) -> Path:
        return self.betas_dir / f"{hemi}.ncsnr.mgh" if self.surface_space else self._vol_file("ncsnr")

    def table_for(self, name: str) -> dict[int, str]:
        for d in (self.root / "nsddata" / "freesurfer" / "fsaverage" / "label",
                  self.root / "nsddata" / "freesurfer" / self.sid / "label"):
            ctab = d / f"{name}.mgz.ctab"
            if ctab.is_file():
                return read_ctab(ctab)
        if name not in LABELS:
            raise DataError(f"label file {name!r}: no {name}.mgz.ctab found and no built-in names (known: {sorted(LABELS)})")
        return LABELS[name]

    @property
    def label_file_names(self) -> tuple[str, ...]:
        if self.args.label_files is not None:
            return tuple(self.args.label_files)
        return ("streams",) if self.surface_space else DEFAULT_LABEL_FILES

    @property
    def hemis(self) -> tuple[str | None, ...]:
        return tuple(self.args.hemis) if self.surface_space else (None,)

    def session_list(self) -> list[int]:
        if self.args.sessions:
            return sorted(self.args.sessions)
        pat = re.compile(r"betas_session(\d+)\.(mgh|nii|nii\.gz)$")
        found = sorted({int(m.group(1)) for p in self.betas_dir.glob("*betas_session*")
                        if (m := pat.search(p.name))}) if self.betas_dir.is_dir() else []
        if not found:
            raise DataError(f"{self.betas_dir}: no betas_sessionYY files (expected {LAYOUT})")
        return found

    def unavailable_reason(self) -> str | None:
        try:
            root = self.root
            for p in (self.expdesign_path(), self.stimuli_path()):
                _need(p, "NSD")
            sessions = self.session_list()
            for h in self.hemis:
                for s in sessions:
                    _need(self.beta_path(s, h), f"betas of session {s}")
                if self.args.mask:
                    _need(self.label_path(self.args.mask, h), "voxel mask")
        except DataError as exc:
            return str(exc)
        _ = root
        return None

    # -- trials and stimuli --------------------------------------------------------------
    @cached_property
    def _design(self) -> dict[str, Any]:
        d = read_expdesign(self.expdesign_path())
        n_sub = d["subjectim"].shape[0]
        if not 1 <= self.args.subject <= n_sub:
            raise DataError(f"{self.expdesign_path()}: subjectim has {n_sub} subjects; no subject {self.args.subject}")
        sessions = self.session_list()
        n_trials = self._trials_per_session(sessions[0])
        need = max(sessions) * n_trials
        if need > len(d["masterordering"]):
            raise DataError(f"{self.expdesign_path()}: masterordering has {len(d['masterordering'])} trials, sessions up to "
                            f"{max(sessions)} × {n_trials} trials need {need}")
        trial_idx = np.concatenate([(s - 1) * n_trials + np.arange(n_trials) for s in sessions])
        cols = d["masterordering"][trial_idx] - 1
        if cols.min() < 0 or cols.max() >= d["subjectim"].shape[1]:
            raise DataError(f"{self.expdesign_path()}: masterordering points outside subjectim's {d['subjectim'].shape[1]} columns")
        nsd_ids = d["subjectim"][self.args.subject - 1, cols]  # 73k ids, 1-based
        shared = np.isin(nsd_ids, d["sharedix"])
        keep = shared if self.args.images == "shared1000" else np.ones(len(nsd_ids), bool)
        stim_ids = np.unique(nsd_ids[keep])
        stim_of_trial = np.full(len(nsd_ids), -1)
        stim_of_trial[keep] = np.searchsorted(stim_ids, nsd_ids[keep])
        return {"sessions": sessions, "n_trials": n_trials, "stim_ids": stim_ids, "stim_of_trial": stim_of_trial,
                "is_shared": np.isin(stim_ids, d["sharedix"])}

    def _split_shape(self, shape: tuple[int, ...], path: Path) -> tuple[tuple[int, ...], int]:
        """(vertices/voxels shape, trials) of a beta file: surface V × 1 × 1 × T, volume X × Y × Z × T."""
        shape = tuple(int(x) for x in shape)
        if self.surface_space:
            if len(shape) < 2 or any(x != 1 for x in shape[1:-1]):
                raise DataError(f"{path}: shape {shape}, expected vertices × 1 × 1 × trials")
            return (shape[0],), shape[-1]
        if len(shape) != 4:
            raise DataError(f"{path}: shape {shape}, expected X × Y × Z × trials")
        return tuple(shape[:3]), shape[3]

    def _trials_per_session(self, session: int) -> int:
        path = self.beta_path(session, self.hemis[0])
        return self._split_shape(load_image(path).shape, path)[1]

    @cached_property
    def _stimuli(self) -> Stimuli:
        ids = self._design["stim_ids"]
        return stimuli_from_hdf5(_need(self.stimuli_path(), "NSD stimuli"), "imgBrick", ids - 1, [f"nsd{i:05d}" for i in ids])

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        return [self.sid]

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        d = self._design
        n = len(d["stim_ids"])
        if self.args.images == "all":
            test = d["is_shared"]
            if not test.any() or test.all():
                raise DataError(f"dataset {self.ctx.entry.name!r}: the loaded sessions show {int(test.sum())} shared-1000 "
                                f"images of {n}; the shared-1000 test split needs both shared and unique images")
            return np.flatnonzero(~test), np.flatnonzero(test)
        perm = np.random.default_rng(self.args.seed).permutation(n)
        n_test = min(n - 2, max(2, round(self.args.test_fraction * n)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])

    # -- voxels ------------------------------------------------------------------------
    def _selection(self) -> list[dict[str, Any]]:
        """Per hemisphere (or the volume): which entries to read and their voxel-table columns."""
        a = self.args
        out = []
        for h in self.hemis:
            shape = self._data_shape(h)
            if a.mask:
                mpath = self.label_path(a.mask, h)
                mask = read_volume(mpath)
                if mask.shape != shape:
                    raise DataError(f"{mpath}: shape {mask.shape} but betas {self.beta_path(self._design['sessions'][0], h)} "
                                    f"have {shape} vertices/voxels")
                sel = mask > 0
            else:
                sel = np.ones(shape, bool)
            cols: dict[str, np.ndarray] = {}
            for name in dict.fromkeys((*self.label_file_names, a.roi_column)):
                lpath = self.label_path(name, h)
                lab = read_volume(_need(lpath, f"ROI label file {name!r}"))
                if lab.shape != shape:
                    raise DataError(f"{lpath}: shape {lab.shape} but the betas have {shape}")
                cols[name] = label_names(lab[sel], self.table_for(name), str(lpath))
            roi = cols[a.roi_column]
            keep = np.isin(roi, a.rois) if a.rois else np.ones(len(roi), bool)
            index = np.flatnonzero(sel.ravel(order="C"))[keep] if self.surface_space else np.argwhere(sel)[keep]
            out.append({"hemi": h, "shape": shape, "index": index, "cols": {k: v[keep] for k, v in cols.items()}})
        return out

    def _data_shape(self, hemi: str | None) -> tuple[int, ...]:
        path = self.beta_path(self._design["sessions"][0], hemi)
        return self._split_shape(load_image(path).shape, path)[0]

    def _coords(self, part: dict[str, Any]) -> np.ndarray:
        if self.surface_space:
            h = part["hemi"]
            path = self.root / "nsddata" / "freesurfer" / "fsaverage" / "surf" / f"{h}.{self.args.surface}"
            xyz = surface_coords(path, part["shape"][0])[part["index"]]
            if h == "rh":
                xyz = xyz + np.array([self.args.hemi_offset_mm, 0.0, 0.0])
            return xyz
        img = load_image(self.label_path(self.args.mask, None) if self.args.mask else self.beta_path(self._design["sessions"][0], None))
        ijk = part["index"]
        return ijk @ img.affine[:3, :3].T + img.affine[:3, 3]

    def _read_index(self, part: dict[str, Any]) -> Any:
        idx = part["index"]
        return idx if self.surface_space else tuple(idx.T)

    @cached_property
    def _targets(self) -> VoxelTargets:
        from harness.kit.ceilings import nc_from_ncsnr, nc_to_r

        d = self._design
        parts = self._selection()
        n_vox = sum(len(p["index"]) for p in parts)
        if n_vox == 0:
            raise DataError(f"dataset {self.ctx.entry.name!r}: no voxels in mask {self.args.mask!r} with rois {self.args.rois}")
        stim_of_trial, n_stim = d["stim_of_trial"], len(d["stim_ids"])
        counts = np.bincount(stim_of_trial[stim_of_trial >= 0], minlength=n_stim)
        rep = np.full((n_stim, int(counts.max()), n_vox), np.nan, np.float32)
        fill = np.zeros(n_stim, np.int64)
        nt = d["n_trials"]
        for k, s in enumerate(d["sessions"]):
            st = stim_of_trial[k * nt : (k + 1) * nt]
            cols = []
            for p in parts:
                path = self.beta_path(s, p["hemi"])
                shape, n_tr = self._split_shape(load_image(path).shape, path)
                if shape != p["shape"] or n_tr != nt:
                    raise DataError(f"{path}: {shape} vertices/voxels × {n_tr} trials, expected {p['shape']} × {nt} "
                                    "(as the first session and the masks)")
                cols.append(read_rows(path, self._read_index(p)).T)  # trials × selected
            trials = np.concatenate(cols, axis=1)
            if self.args.zscore_sessions:
                with np.errstate(invalid="ignore", divide="ignore"):
                    sd = trials.std(0)
                    trials = (trials - trials.mean(0)) / np.where(sd > 0, sd, np.nan)
            ok = st >= 0
            rep[st[ok], fill[st[ok]] + _rank_within(st[ok])] = trials[ok]
            np.add.at(fill, st[ok], 1)
        responses = nanmean_repeats(rep)
        vox = self._voxel_table(parts)
        ncsnr = np.concatenate([self._ncsnr(p) for p in parts])
        responses, vox, rep, n_excl, ncsnr = exclude_nonfinite(responses, vox, rep, f"{self.betas_dir}", ncsnr)
        train, test = self.split()
        nc = nc_from_ncsnr(ncsnr, counts[test].astype(np.float64))
        return VoxelTargets(responses=responses, train_idx=train, test_idx=test, voxels=vox, repeats=rep,
                            noise_ceiling_r=nc_to_r(nc),
                            roi_levels={r: LEVELS[r] for r in dict.fromkeys(vox["roi"]) if r in LEVELS}, n_excluded=n_excl)

    def _ncsnr(self, part: dict[str, Any]) -> np.ndarray:
        path = self.ncsnr_path(part["hemi"])
        v = read_volume(_need(path, "ncsnr"))
        if v.shape != part["shape"]:
            raise DataError(f"{path}: shape {v.shape} but the betas have {part['shape']}")
        idx = part["index"]
        return v[idx].astype(np.float64) if self.surface_space else v[tuple(idx.T)].astype(np.float64)

    def _voxel_table(self, parts: list[dict[str, Any]]) -> pd.DataFrame:
        import pandas as pd

        frames = []
        for p in parts:
            h = p["hemi"] or "vol"
            idx = p["index"]
            ids = [f"{h}_{i}" for i in idx] if self.surface_space else ["vol_" + "_".join(map(str, r)) for r in idx]
            xyz = self._coords(p)
            df = pd.DataFrame({"voxel_id": ids, "roi": p["cols"][self.args.roi_column], "hemi": h,
                               "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
            if self.surface_space:  # the vertex on fsaverage, as Algonauts 2023 gives it: the report's surface view
                df.insert(3, "fsaverage_index", np.asarray(idx, np.int64))
            for name, vals in p["cols"].items():
                df[name] = vals
            frames.append(df)
        vox = pd.concat(frames, ignore_index=True)
        vox["roi"] = vox["roi"].fillna(UNLABELLED)
        return vox

    def targets(self, subject: str) -> VoxelTargets:
        if subject != self.sid:
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only {self.sid!r})")
        return self._targets

    def fetch_plan(self) -> FetchPlan:
        from harness_datasets.sources import nsd_plan

        a = self.args
        return nsd_plan(self.root, a.subject, a.space, a.beta_version, a.sessions, self.hemis_for_fetch, a.mask,
                        self.label_file_names, a.surface)

    @property
    def hemis_for_fetch(self) -> tuple[str, ...]:
        return tuple(self.args.hemis) if self.surface_space else ()

    def digest(self) -> str:
        """Stimuli + small files in full; beta files by name, size and their first/last 64 KiB (they are GBs)."""
        small = [self.expdesign_path()] + [self.ncsnr_path(h) for h in self.hemis]
        h = hashlib.sha256((self.stimuli().digest + files_digest([p for p in small if p.is_file()])).encode())
        for s in self._design["sessions"]:
            for hemi in self.hemis:
                p = self.beta_path(s, hemi)
                size = p.stat().st_size
                with p.open("rb") as fh:
                    h.update(f"{p.name}:{size}".encode())
                    h.update(fh.read(1 << 16))
                    fh.seek(max(0, size - (1 << 16)))
                    h.update(fh.read())
        h.update(json.dumps(self.args.model_dump(mode="json"), sort_keys=True).encode())
        return h.hexdigest()


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements share its group (0, 1, 2 …)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    run = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    out = np.empty(len(g), np.int64)
    out[order] = run
    return out
