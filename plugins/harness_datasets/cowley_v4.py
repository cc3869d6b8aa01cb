"""Cowley et al. 2023: macaque V4 spike counts to natural images, one dataset entry per session.

Layout of ``$HARNESS_DATA_ROOT/cowley_v4``::

    responses_<S>.npy       float, neurons × images: repeat-averaged spike counts (100 ms bins)
    images_<S>.zip          the images; column i = i-th image in basename order (folder prefixes ignored)
    responses_raw_<S>.npy   optional, neurons × images × repeats, NaN for missing repeats (session 210325)

Each neuron is a voxel-table row with ``roi = "V4"``; the release has no electrode
positions, so there are no x, y, z columns (topographic heads cannot use these data).
Neurons are not matched across sessions, so each session is its own subject.

Noise ceiling: only sessions with single repeats have one — per neuron, the split-half
correlation of repeat halves, Spearman–Brown corrected to the full average
(:func:`harness.kit.ceilings.split_half_reliability`), as ``noise_ceiling_r = sqrt(reliability)``.

Train/test split: a fixed split stored in ``splits/cowley_v4_<S>.json`` (test image basenames).
It is the first ``round(test_fraction·n)`` images of ``numpy.random.default_rng([seed, S])
.permutation(n)``, with seed 0 and test fraction 0.2; :func:`make_split` recomputes it and the
tests check the stored file equals the recomputation. Other seeds/fractions are computed the same way.
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
from harness_datasets.roots import data_folder
from harness_datasets.specs import COWLEY_V4, STORED_SEED, STORED_TEST_FRACTION, CowleyArgs
from harness_datasets.stimuli import files_digest, stimuli_from_zip, zip_members
from harness_datasets.voxels import exclude_nonfinite

if TYPE_CHECKING:
    from harness.kit.fetch import FetchPlan

LAYOUT = ("<root>/responses_<S>.npy (neurons × images), <root>/images_<S>.zip (images in basename order), "
          "optional <root>/responses_raw_<S>.npy (neurons × images × repeats, NaN-padded)")
SPLIT_DIR = Path(__file__).resolve().parent / "splits"


def make_split(image_names: list[str], session: str, seed: int = STORED_SEED,
               test_fraction: float = STORED_TEST_FRACTION) -> list[str]:
    """Sorted basenames of the test images for ``session``."""
    n = len(image_names)
    perm = np.random.default_rng([seed, int(session)]).permutation(n)
    n_test = round(test_fraction * n)
    return sorted(image_names[i] for i in perm[:n_test])


def split_file(session: str) -> Path:
    return SPLIT_DIR / f"cowley_v4_{session}.json"


def write_split(image_names: list[str], session: str) -> Path:
    """Store the default split of ``session`` (run once per session; the file is versioned with the code)."""
    SPLIT_DIR.mkdir(exist_ok=True)
    test = make_split(image_names, session)
    p = split_file(session)
    p.write_text(json.dumps({"session": session, "seed": STORED_SEED, "test_fraction": STORED_TEST_FRACTION,
                             "n_images": len(image_names), "rule": "numpy default_rng([seed, session]).permutation(n)[:round(f*n)]",
                             "test": test}, indent=0))
    return p


class CowleyV4(VoxelDataset):
    spec = COWLEY_V4
    args: CowleyArgs

    @property
    def root(self) -> Path:
        return data_folder(self.ctx, self.args.root, "cowley_v4", LAYOUT)

    def _file(self, kind: str) -> Path:
        s = self.args.session
        return self.root / {"responses": f"responses_{s}.npy", "images": f"images_{s}.zip",
                            "raw": f"responses_raw_{s}.npy"}[kind]

    def unavailable_reason(self) -> str | None:
        try:
            root = self.root
        except DataError as exc:
            return str(exc)
        for kind in ("responses", "images"):
            if not self._file(kind).is_file():
                return f"{self._file(kind)}: missing (expected {LAYOUT})"
        _ = root
        return None

    @cached_property
    def _stimuli(self) -> Stimuli:
        path = self._file("images")
        if not path.is_file():
            raise DataError(f"{path}: missing (expected {LAYOUT})")
        return stimuli_from_zip(path)

    def stimuli(self) -> Stimuli:
        return self._stimuli

    def subjects(self) -> list[str]:
        return [self.args.session]

    def _load(self, kind: str, ndim: int) -> np.ndarray:
        path = self._file(kind)
        if not path.is_file():
            raise DataError(f"{path}: missing (expected {LAYOUT})")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from exc
        if a.ndim != ndim:
            raise DataError(f"{path}: shape {a.shape}, expected {ndim}-D ({LAYOUT})")
        return a.astype(np.float64)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        names = list(self.stimuli().ids)
        a = self.args
        stored = split_file(a.session)
        if (a.split_seed, a.test_fraction) == (STORED_SEED, STORED_TEST_FRACTION) and stored.is_file():
            meta = json.loads(stored.read_text())
            test_names = set(meta["test"])
            unknown = test_names - set(names)
            if meta["n_images"] != len(names) or unknown:
                raise DataError(f"{stored}: stored split is for {meta['n_images']} images; {self._file('images')} has "
                                f"{len(names)} ({len(unknown)} stored test images not found)")
        else:
            test_names = set(make_split(names, a.session, a.split_seed, a.test_fraction))
        is_test = np.array([n in test_names for n in names])
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)

    @cached_property
    def _targets(self) -> VoxelTargets:
        import pandas as pd

        resp = self._load("responses", 2)  # neurons × images
        n_img = len(self.stimuli())
        if resp.shape[1] != n_img:
            raise DataError(f"{self._file('responses')}: {resp.shape[1]} image columns but {n_img} images in "
                            f"{self._file('images')}")
        repeats = None
        ceiling = None
        if self._file("raw").is_file():
            raw = self._load("raw", 3)  # neurons × images × repeats
            if raw.shape[:2] != resp.shape:
                raise DataError(f"{self._file('raw')}: shape {raw.shape} does not match responses {resp.shape} × repeats")
            repeats = raw.transpose(1, 2, 0)  # images × repeats × neurons
        voxels = pd.DataFrame({"voxel_id": [f"n{i:03d}" for i in range(resp.shape[0])], "roi": "V4"})
        responses, voxels, repeats, n_excl = exclude_nonfinite(resp.T, voxels, repeats, str(self._file("responses")))
        if repeats is not None:
            from harness.kit.ceilings import nc_to_r, split_half_reliability

            ceiling = nc_to_r(split_half_reliability(repeats, n_splits=self.args.n_splits, seed=0))
        train, test = self.split()
        return VoxelTargets(responses=responses.astype(np.float32), train_idx=train, test_idx=test, voxels=voxels,
                            repeats=None if repeats is None else repeats.astype(np.float32),
                            noise_ceiling_r=ceiling, roi_levels={"V4": 1.0}, n_excluded=n_excl)

    def targets(self, subject: str) -> VoxelTargets:
        if subject != self.args.session:
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only {self.args.session!r})")
        return self._targets

    def fetch_plan(self) -> FetchPlan:
        from harness_datasets.sources import github_plan

        return github_plan("cowley_v4", self.root, select=self.args.session)

    def digest(self) -> str:
        files = [self._file("responses")] + ([self._file("raw")] if self._file("raw").is_file() else [])
        h = hashlib.sha256(self.stimuli().digest.encode())
        h.update(files_digest(files).encode())
        h.update(json.dumps([self.args.split_seed, self.args.test_fraction]).encode())
        return h.hexdigest()


def image_names(root: Path, session: str) -> list[str]:
    """Basenames of a session's images in column order (no decoding)."""
    from pathlib import PurePosixPath

    return [PurePosixPath(m).name for m in zip_members(root / f"images_{session}.zip")]
