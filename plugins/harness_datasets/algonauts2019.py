"""Algonauts 2019 fMRI RDMs (Cichy et al.): the 92- and 118-image training sets.

Layout under ``<root>``: ``images/*.jpg`` (name-sorted = RDM order) and either
``rdms.npz`` (EVC, IT: subjects × N × N) or the original ``target_fmri.mat``
(MATLAB v7.3, ``EVC_RDMs``/``IT_RDMs``).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from harness.contracts import Dataset, RDMTargets, Stimuli
from harness.errors import DataError
from harness.specs import RDMS, PluginArgs, PluginSpec

LAYOUT = "<root>/images/*.jpg and <root>/rdms.npz (or target_fmri.mat with EVC_RDMs, IT_RDMs)"


class AlgonautsArgs(PluginArgs):
    set: Literal["92", "118"] = "92"
    #: folder of the set; default ``$HARNESS_DATA_ROOT/cichy92`` (or ``cichy118``)
    root: str | None = None
    rois: tuple[str, ...] = ("EVC", "IT")


def read_target_mat(path: Path, rois: tuple[str, ...]) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    try:
        with h5py.File(path, "r") as f:
            for roi in rois:
                key = f"{roi}_RDMs"
                if key not in f:
                    raise DataError(f"{path}: no dataset {key!r} (found {sorted(f.keys())})")
                # MATLAB stores column-major: h5py sees (N, N, S); RDMs are symmetric so only the axis order matters
                out[roi] = np.asarray(f[key], dtype=np.float64).transpose(2, 0, 1)
    except OSError as exc:
        raise DataError(f"{path}: not a readable MATLAB v7.3 file ({exc})") from exc
    return out


class Algonauts2019(Dataset):
    spec = PluginSpec(
        id="algonauts2019",
        kind="dataset",
        version="1",
        summary="Algonauts 2019 fMRI RDMs (EVC, IT; 15 subjects), 92- or 118-image set",
        args=AlgonautsArgs,
        produces=frozenset({RDMS}),
    )
    args: AlgonautsArgs
    target_kind = "rdms"  # type: ignore[assignment]

    @property
    def root(self) -> Path:
        if self.args.root:
            return Path(self.args.root).expanduser()
        dr = self.ctx.settings.data_root
        if dr is None:
            raise DataError(f"dataset {self.ctx.entry.name!r}: HARNESS_DATA_ROOT is not set (expected {LAYOUT})")
        return Path(dr) / f"cichy{self.args.set}"

    def unavailable_reason(self) -> str | None:
        try:
            root = self.root
        except DataError as exc:
            return str(exc)
        if not (root / "images").is_dir():
            return f"{root / 'images'}: missing (expected {LAYOUT})"
        if not (root / "rdms.npz").is_file() and not (root / "target_fmri.mat").is_file():
            return f"{root}: no rdms.npz or target_fmri.mat (expected {LAYOUT})"
        return None

    def _image_paths(self) -> list[Path]:
        paths = sorted((self.root / "images").glob("*.jpg"))
        if not paths:
            raise DataError(f"{self.root / 'images'}: no .jpg images (expected {LAYOUT})")
        return paths

    @cached_property
    def _stimuli(self) -> Stimuli:
        paths = self._image_paths()
        return Stimuli.from_files(paths, ids=[p.name for p in paths])

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        # One job over all subjects: the RSA head chooses layers leave-one-subject-out
        return ["all"]

    @cached_property
    def _rdms(self) -> dict[str, np.ndarray]:
        npz = self.root / "rdms.npz"
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as z:
                missing = [r for r in self.args.rois if r not in z.files]
                if missing:
                    raise DataError(f"{npz}: no arrays {missing} (found {z.files})")
                return {r: np.asarray(z[r], dtype=np.float64) for r in self.args.rois}
        return read_target_mat(self.root / "target_fmri.mat", self.args.rois)

    def targets(self, subject: str) -> RDMTargets:
        if subject != "all":
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only 'all')")
        rdms = self._rdms
        n_sub = next(iter(rdms.values())).shape[0]
        return RDMTargets(
            rdms=rdms,
            subject_ids=[f"sub{i + 1:02d}" for i in range(n_sub)],
            roi_levels={r: float(i) for i, r in enumerate(self.args.rois)},
        )

    def digest(self) -> str:
        h = hashlib.sha256(self.stimuli().digest.encode())
        for name in ("rdms.npz", "target_fmri.mat"):
            p = self.root / name
            if p.is_file():
                h.update(p.read_bytes())
                break
        return h.hexdigest()
