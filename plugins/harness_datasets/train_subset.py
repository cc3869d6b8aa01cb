"""A registry dataset with its training stimuli subsampled: the data-scaling axis as data.

Why a dataset (not a runner option): the runner then crosses training-set size with every
backbone and head like any other dataset entry, each (size, seed) lands as ordinary job rows,
and the ``data_scaling`` view (leaderboards/data_scaling.sql) reads the curve back with CIs
over seeds. Yang, Gee & Shi (CVPR 2024, §5.2 / Fig. 10) plot score against the number of
training images; this reproduces that axis on any voxel dataset.

* **Test set fixed.** Only ``train_idx`` shrinks; ``test_idx`` is the wrapped dataset's.
* **Seeds are job units.** Each wrapped subject ``s`` becomes subjects ``s@seed0 … s@seed{k-1}``:
  independent subsamples, so the CI over them is the spread due to *which* images were
  trained on. Subsample ``i`` of size ``n`` is the first ``n`` of
  ``default_rng([seed_base, i]).permutation(train_idx)`` — nested across sizes, so a larger
  set always contains the smaller one of the same seed (a curve, not independent draws).
* **Same stimuli, same tokens.** ``stimuli()`` is the wrapped dataset's, so the token cache is shared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import cached_property

import numpy as np

from harness.contracts import Dataset, Stimuli, VoxelDataset, VoxelTargets
from harness.errors import DataError
from harness_datasets.specs import TRAIN_SUBSET, TrainSubsetArgs

SEED_SEP = "@seed"


def subsample(train_idx: np.ndarray, n_train: int, seed: int, seed_base: int = 0) -> np.ndarray:
    """Sorted ``n_train`` of ``train_idx``: a prefix of one seeded permutation (nested across sizes)."""
    train_idx = np.asarray(train_idx, np.int64)
    perm = np.random.default_rng([seed_base, seed]).permutation(len(train_idx))
    return np.sort(train_idx[perm[:n_train]])


class TrainSubset(VoxelDataset):
    spec = TRAIN_SUBSET
    args: TrainSubsetArgs

    @cached_property
    def base(self) -> Dataset:
        a, name = self.args, self.ctx.entry.name
        if a.dataset == name:
            raise DataError(f"dataset {name!r}: args.dataset names the entry itself")
        if self.ctx.dataset_for is None:
            raise DataError(f"dataset {name!r}: wrapping {a.dataset!r} needs the runner's dataset access")
        ds = self.ctx.dataset_for(a.dataset)
        if ds.target_kind != "voxels":
            raise DataError(f"dataset {name!r}: {a.dataset!r} gives {ds.target_kind}, train_subset needs voxels")
        return ds

    def unavailable_reason(self) -> str | None:
        try:
            base = self.base
        except Exception as exc:
            return str(exc)
        return base.unavailable_reason()

    def stimuli(self) -> Stimuli:
        return self.base.stimuli()

    def _base_subjects(self) -> list[str]:
        have = self.base.subjects()
        keep = self.args.subjects
        if keep is None:
            return have
        unknown = [s for s in keep if s not in have]
        if unknown:
            raise DataError(f"dataset {self.ctx.entry.name!r}: args.subjects {unknown} not in {self.args.dataset!r} "
                            f"(have {', '.join(have)})")
        return list(keep)

    def subjects(self) -> list[str]:
        return [f"{s}{SEED_SEP}{i}" for s in self._base_subjects() for i in range(self.args.seeds)]

    def digest(self) -> str:
        blob = json.dumps({"n_train": self.args.n_train, "seed_base": self.args.seed_base}, sort_keys=True)
        return hashlib.sha256((self.base.digest() + blob).encode()).hexdigest()

    def targets(self, subject: str) -> VoxelTargets:
        name = self.ctx.entry.name
        base_subject, sep, seed = subject.rpartition(SEED_SEP)
        if not sep or not seed.isdigit() or int(seed) >= self.args.seeds or base_subject not in self._base_subjects():
            raise DataError(f"dataset {name!r}: unknown subject {subject!r} (have {', '.join(self.subjects())})")
        t = self.base.targets(base_subject)
        if not isinstance(t, VoxelTargets):
            raise DataError(f"dataset {name!r}: {self.args.dataset!r} did not give voxel targets")
        n = self.args.n_train
        if n > len(t.train_idx):
            raise DataError(f"dataset {name!r}: n_train {n} exceeds the {len(t.train_idx)} training stimuli of "
                            f"{self.args.dataset!r}")
        return replace(t, train_idx=subsample(t.train_idx, n, int(seed), self.args.seed_base))
