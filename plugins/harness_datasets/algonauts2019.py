"""Algonauts 2019 (Cichy et al.): fMRI and MEG RDMs of the 92-, 118- and 78-image sets.

Layout of one set's folder (``$HARNESS_DATA_ROOT/cichy92``, ``cichy118``, ``cichy78``)::

    images/*.jpg                 name order = RDM order   (or <N>images.mat: visual_stimuli.names/.pixels)
    rdms.npz                     EVC, IT: subjects × N × N (derived, numpy only)   (or ↓)
    target_fmri.mat              EVC_RDMs, IT_RDMs: MATLAB subjects × N × N (v7.3 or v5)
    target_meg.mat               MEG_RDMs_early, MEG_RDMs_late: MATLAB subjects × sessions × N × N
    MEG_decoding_RDMs.mat        optional, time-resolved: MATLAB subjects × sessions × time × N × N
                                 (decoding accuracy, diagonal NaN; time 0 = −100 ms, 1 ms steps)

ROIs: fMRI ``EVC``, ``IT``; MEG ``MEG_early``, ``MEG_late`` (sessions averaged unless
``meg_sessions`` picks one) and ``MEG_t<ms>`` for time windows of the time-resolved file.
As in the challenge, EVC pairs with early and IT with late MEG: they share a hierarchy
level. ``sets=("92", "118")`` joins image sets in one job: the stimuli are concatenated and
each ROI is named ``<set>/<roi>`` with :attr:`RDMTargets.stimulus_idx` naming its block.
Noise ceilings: :func:`harness.kit.ceilings.noise_ceiling_rdm` (lower: each subject vs the mean
of the others; upper: vs the mean of all; squared Spearman r), see :meth:`noise_ceilings`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.contracts import RDMTargets, Stimuli
from harness.errors import DataError
from harness_datasets.matfiles import read_mat_arrays, read_visual_stimuli
from harness_datasets.rdm_sets import AllSubjectsRDMDataset
from harness_datasets.specs import ALGONAUTS2019, AlgonautsArgs
from harness_datasets.stimuli import files_digest, image_files, stimuli_from_arrays

if TYPE_CHECKING:
    from harness.kit.fetch import FetchPlan

SET_FOLDERS: dict[str, str] = {"92": "cichy92", "118": "cichy118", "78": "cichy78"}
LAYOUT = ("<root>/images/*.jpg (or <N>images.mat with visual_stimuli.names/pixels); fMRI: rdms.npz (EVC, IT: "
          "subjects×N×N) or target_fmri.mat (EVC_RDMs, IT_RDMs); MEG: target_meg.mat (MEG_RDMs_early, MEG_RDMs_late: "
          "subjects×sessions×N×N); optional MEG_decoding_RDMs.mat (subjects×sessions×time×N×N)")
MEG_WINDOWS = {"early": "MEG_early", "late": "MEG_late"}
#: EVC ↔ early MEG, IT ↔ late MEG, as the challenge paired them
LEVELS = {"EVC": 0.0, "MEG_early": 0.0, "IT": 1.0, "MEG_late": 1.0}
TIME_FILE, TIME_KEY = "MEG_decoding_RDMs.mat", "MEG_decoding_RDMs"


# ----------------------------------------------------------------------------- readers
def _check_rdm_stack(a: np.ndarray, path: Path, key: str, ndim: int, layout: str) -> np.ndarray:
    if a.ndim != ndim or a.shape[-1] != a.shape[-2]:
        raise DataError(f"{path}: {key} has shape {a.shape}, expected {layout}")
    return a


def read_fmri_rdms(root: Path, rois: tuple[str, ...]) -> dict[str, np.ndarray]:
    """ROI → subjects × N × N from ``rdms.npz`` or ``target_fmri.mat``."""
    npz = root / "rdms.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as z:
                missing = [r for r in rois if r not in z.files]
                if missing:
                    raise DataError(f"{npz}: no arrays {missing} (found {z.files}); expected {LAYOUT}")
                return {r: _check_rdm_stack(np.asarray(z[r], np.float64), npz, r, 3, "subjects×N×N") for r in rois}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # damaged archive: Bad CRC-32, truncated
            raise DataError(f"{npz}: damaged or not a numpy .npz archive ({type(exc).__name__}: {exc})") from exc
    mat = root / "target_fmri.mat"
    if not mat.is_file():
        raise DataError(f"{root}: no rdms.npz or target_fmri.mat (expected {LAYOUT})")
    arrays = read_mat_arrays(mat, tuple(f"{r}_RDMs" for r in rois), "EVC_RDMs/IT_RDMs, subjects×N×N")
    return {r: _check_rdm_stack(arrays[f"{r}_RDMs"].astype(np.float64), mat, f"{r}_RDMs", 3, "subjects×N×N") for r in rois}


def read_meg_rdms(path: Path, windows: tuple[str, ...] = ("early", "late")) -> dict[str, np.ndarray]:
    """Window → subjects × sessions × N × N from ``target_meg.mat`` (2 sessions in the challenge files)."""
    keys = tuple(f"MEG_RDMs_{w}" for w in windows)
    arrays = read_mat_arrays(path, keys, "MEG_RDMs_early/MEG_RDMs_late, subjects×sessions×N×N")
    out = {}
    for w, k in zip(windows, keys, strict=True):
        a = arrays[k].astype(np.float64)
        if a.ndim == 3:  # a file without a session axis
            a = a[:, None]
        out[w] = _check_rdm_stack(a, path, k, 4, "subjects×sessions×N×N")
    return out


def _pick_sessions(a: np.ndarray, sessions: str, path: Path) -> np.ndarray:
    """subjects × sessions × … → subjects × …, averaging sessions or taking one."""
    if sessions == "mean":
        return a.mean(1)
    s = int(sessions) - 1
    if s >= a.shape[1]:
        raise DataError(f"{path}: session {sessions} asked for but the file has {a.shape[1]}")
    return a[:, s]


def meg_times(n_time: int, time0_ms: float = -100.0, dt_ms: float = 1.0) -> np.ndarray:
    """Time (ms) of each sample of the time-resolved MEG RDMs."""
    return time0_ms + dt_ms * np.arange(n_time)


def read_meg_time_windows(path: Path, starts_ms: tuple[float, ...], window_ms: float, sessions: str = "mean",
                          time0_ms: float = -100.0, dt_ms: float = 1.0,
                          samples: dict[float, np.ndarray] | None = None) -> dict[float, np.ndarray]:
    """Start time → subjects × N × N: time-resolved MEG RDMs averaged over [t, t + window).

    Reads only the asked time samples of ``MEG_decoding_RDMs`` (the full file is GBs);
    the undefined diagonal (NaN) becomes 0. A ``samples`` dict is filled with each window's
    per-sample RDMs (subjects × time × N × N), whose mean over time is the returned RDM.
    """
    import h5py

    from harness_datasets.matfiles import is_hdf5

    if not path.is_file():
        raise DataError(f"{path}: missing (time-resolved MEG RDMs; expected {LAYOUT})")
    if not is_hdf5(path):
        arr = read_mat_arrays(path, (TIME_KEY,), "MEG_decoding_RDMs subjects×sessions×time×N×N")[TIME_KEY]
        get = lambda sl: arr[:, :, sl]
        shape = arr.shape
        f = None
    else:
        f = h5py.File(path, "r")
        if TIME_KEY not in f:
            f.close()
            raise DataError(f"{path}: no {TIME_KEY!r}; expected {LAYOUT}")
        ds = f[TIME_KEY]  # HDF5 axes reversed: N × N × time × sessions × subjects
        shape = ds.shape[::-1]

        def get(sl: slice) -> np.ndarray:
            a = np.asarray(ds[:, :, sl, :, :], dtype=np.float64)
            return a.transpose(4, 3, 2, 1, 0)

    try:
        if len(shape) != 5 or shape[-1] != shape[-2]:
            raise DataError(f"{path}: {TIME_KEY} has shape {shape}, expected subjects×sessions×time×N×N")
        times = meg_times(shape[2], time0_ms, dt_ms)
        out = {}
        for t in starts_ms:
            sel = np.flatnonzero((times >= t) & (times < t + window_ms))
            if sel.size == 0:
                raise DataError(f"{path}: no MEG samples in [{t}, {t + window_ms}) ms (data span {times[0]}…{times[-1]} ms)")
            block = get(slice(int(sel[0]), int(sel[-1]) + 1))  # S × sessions × T × N × N
            n = block.shape[-1]
            block[..., np.arange(n), np.arange(n)] = 0.0  # the undefined diagonal
            if samples is not None:
                per = np.stack([_pick_sessions(block[:, :, k], sessions, path) for k in range(block.shape[2])], axis=1)
                samples[t] = (per + per.transpose(0, 1, 3, 2)) / 2
            rdm = _pick_sessions(block.mean(axis=2), sessions, path)
            out[t] = (rdm + rdm.transpose(0, 2, 1)) / 2
    finally:
        if f is not None:
            f.close()
    return out


def read_set_stimuli(root: Path, set_name: str) -> Stimuli:
    """``images/*.jpg`` when present, else ``<N>images.mat`` (any ``*images.mat``)."""
    img_dir = root / "images"
    if img_dir.is_dir():
        paths = image_files(img_dir, LAYOUT)
        return Stimuli.from_files(paths, ids=[p.name for p in paths])
    mats = [root / f"{set_name}images.mat"] if (root / f"{set_name}images.mat").is_file() else sorted(root.glob("*images.mat"))
    if not mats:
        raise DataError(f"{img_dir}: missing, and no {set_name}images.mat in {root} (expected {LAYOUT})")
    names, pixels = read_visual_stimuli(mats[0])
    return stimuli_from_arrays(pixels, names, str(mats[0]))


def concat_stimuli(parts: list[tuple[str, Stimuli]]) -> Stimuli:
    """One stimulus list from several, ids prefixed ``<set>/``."""
    offsets = np.cumsum([0] + [len(s) for _, s in parts])
    ids = tuple(f"{p}/{i}" for p, s in parts for i in s.ids)
    digest = hashlib.sha256("".join(f"{p}:{s.digest};" for p, s in parts).encode()).hexdigest()

    def load(i: int):
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        return parts[k][1].load(i - int(offsets[k]))

    return Stimuli(ids=ids, load=load, digest=digest)


# ----------------------------------------------------------------------------- plugin
class Algonauts2019(AllSubjectsRDMDataset):
    spec = ALGONAUTS2019
    args: AlgonautsArgs

    @property
    def set_names(self) -> tuple[str, ...]:
        return tuple(self.args.sets) or (self.args.set,)

    @property
    def joined(self) -> bool:
        return len(self.set_names) > 1

    def set_root(self, set_name: str) -> Path:
        a = self.args
        explicit = a.roots.get(set_name) or (a.root if not self.joined else None)
        if explicit:
            return Path(explicit).expanduser()
        dr = self.ctx.settings.data_root
        if dr is None:
            raise DataError(f"dataset {self.ctx.entry.name!r}: HARNESS_DATA_ROOT is not set (expected "
                            f"$HARNESS_DATA_ROOT/{SET_FOLDERS[set_name]} with {LAYOUT})")
        return Path(dr) / SET_FOLDERS[set_name]

    @property
    def root(self) -> Path:
        return self.set_root(self.set_names[0])

    def _target_files(self, root: Path) -> list[Path]:
        files: list[Path] = []
        if "fmri" in self.args.modalities:
            npz, mat = root / "rdms.npz", root / "target_fmri.mat"
            files.append(npz if npz.is_file() else mat)
        if "meg" in self.args.modalities:
            if self.args.meg_windows:
                files.append(root / "target_meg.mat")
            if self.args.meg_times_ms:
                files.append(root / TIME_FILE)
        return files

    def unavailable_reason(self) -> str | None:
        for s in self.set_names:
            try:
                root = self.set_root(s)
            except DataError as exc:
                return str(exc)
            if not root.is_dir():
                return f"{root}: missing (expected {LAYOUT})"
            if not (root / "images").is_dir() and not list(root.glob("*images.mat")):
                return f"{root / 'images'}: missing, and no *images.mat (expected {LAYOUT})"
            for p in self._target_files(root):
                if not p.is_file():
                    alt = " or rdms.npz" if p.name == "target_fmri.mat" else ""
                    return f"{p}{alt}: missing (expected {LAYOUT})"
        return None

    @cached_property
    def _stimuli(self) -> Stimuli:
        parts = [(s, read_set_stimuli(self.set_root(s), s)) for s in self.set_names]
        return concat_stimuli(parts) if self.joined else parts[0][1]

    def stimuli(self) -> Stimuli:
        return self._stimuli


    def _set_rdms(self, set_name: str, time_rdms: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """ROI → subjects × N × N of one set; ``time_rdms`` receives the time-resolved MEG windows when asked."""
        a, root = self.args, self.set_root(set_name)
        out: dict[str, np.ndarray] = {}
        if "fmri" in a.modalities:
            out.update(read_fmri_rdms(root, a.rois))
        if "meg" in a.modalities:
            path = root / "target_meg.mat"
            if a.meg_windows:
                for w, rdm in read_meg_rdms(path, a.meg_windows).items():
                    out[MEG_WINDOWS[w]] = _pick_sessions(rdm, a.meg_sessions, path)
            if a.meg_times_ms:
                samples: dict[float, np.ndarray] | None = {} if a.meg_time_resolved else None
                tw = read_meg_time_windows(root / TIME_FILE, a.meg_times_ms, a.meg_window_ms, a.meg_sessions,
                                           a.meg_time0_ms, a.meg_dt_ms, samples)
                out.update({f"MEG_t{t:g}": r for t, r in tw.items()})
                if samples is not None and time_rdms is not None:
                    time_rdms.update({f"MEG_t{t:g}": r for t, r in samples.items()})
        counts = {roi: r.shape[0] for roi, r in out.items()}
        if len(set(counts.values())) > 1:
            raise DataError(f"{root}: subject counts differ between ROIs/modalities {counts}; they cannot share one "
                            "subject list (pick modalities with the same subjects)")
        return out

    def roi_level(self, roi: str) -> float:
        base = roi.split("/", 1)[-1]
        if base in LEVELS:
            return LEVELS[base]
        if base.startswith("MEG_t"):
            return float(base[5:]) / 1000.0  # later MEG time, higher level: seconds after onset
        return float(self.args.rois.index(base)) if base in self.args.rois else 0.0

    @cached_property
    def _targets(self) -> RDMTargets:
        rdms: dict[str, np.ndarray] = {}
        timed: dict[str, np.ndarray] = {}
        idx: dict[str, np.ndarray] = {}
        start = 0
        n_sub = None
        for s in self.set_names:
            part_timed: dict[str, np.ndarray] = {}
            part = self._set_rdms(s, part_timed)
            n = next(iter(part.values())).shape[1]
            for roi, r in part.items():
                name = f"{s}/{roi}" if self.joined else roi
                rdms[name] = r
                if roi in part_timed:
                    timed[name] = part_timed[roi]
                if self.joined:
                    idx[name] = np.arange(start, start + n)
                if n_sub is not None and r.shape[0] != n_sub:
                    raise DataError(f"dataset {self.ctx.entry.name!r}: sets have different subject counts "
                                    f"({n_sub} vs {r.shape[0]}); they cannot be joined")
                n_sub = r.shape[0]
            start += n
        assert n_sub is not None
        return RDMTargets(rdms=rdms, subject_ids=[f"sub{i + 1:02d}" for i in range(n_sub)],
                          roi_levels={roi: self.roi_level(roi) for roi in rdms}, stimulus_idx=idx, time_rdms=timed)



    def fetch_plan(self) -> FetchPlan | None:
        """fMRI RDMs and images of the 92 or 118 set (the MEG files and the 78 set have no public mirror here)."""
        from harness_datasets.sources import github_plan

        if self.joined:
            raise DataError(f"dataset {self.ctx.entry.name!r} joins sets {self.set_names}: fetch each set's own entry")
        if self.args.set == "78":
            return None
        return github_plan(SET_FOLDERS[self.args.set], self.root)

    def digest(self) -> str:
        h = hashlib.sha256(self.stimuli().digest.encode())
        for s in self.set_names:
            h.update(files_digest(self._target_files(self.set_root(s))).encode())
        h.update(json.dumps(self.args.model_dump(mode="json"), sort_keys=True).encode())
        return h.hexdigest()
