"""The shared shape of RDM datasets scored in one job over all their subjects, and their evaluation protocol."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod

import numpy as np

from harness.contracts import RDMDataset, RDMFold, RDMTargets
from harness.errors import DataError
from harness_datasets.specs import RDMProtocolArgs


def image_folds(rdms: dict[str, np.ndarray], stimulus_idx: dict[str, np.ndarray], k: int,
                seed: int) -> list[RDMFold]:
    """k-fold over images within each ROI's image set; ROIs over the same images share one split."""
    folds: list[RDMFold] = []
    for roi, r in rdms.items():
        n = r.shape[1]
        if n < 6:
            raise DataError(f"ROI {roi!r}: {n} images cannot make 2 image folds of ≥ 3 images (use images: seen)")
        kk = min(k, n // 3)  # small sets: fewer folds, never a block under 3 images
        key = np.asarray(stimulus_idx.get(roi, np.arange(n)))
        # the split depends on the images (not the ROI name), so EVC and IT of one set share it
        rng = np.random.default_rng([seed, n, int(key.sum()) % (2**31)])
        parts = [np.sort(p) for p in np.array_split(rng.permutation(n), kk)]
        for p in parts:
            folds.append(RDMFold(roi=roi, test=p, train={roi: np.setdiff1d(np.arange(n), p)}, subjects="seen"))
    return folds


def transfer_folds(rdms: dict[str, np.ndarray], predict: dict[str, tuple[str, ...]], where: str) -> list[RDMFold]:
    """One fold per ROI ``<test>/<roi>``: trained on ``<train>/<roi>`` of every listed set (all images and subjects)."""
    folds: list[RDMFold] = []
    for test_set, train_sets in predict.items():
        if not train_sets or test_set in train_sets:
            raise DataError(f"{where}: args.predict[{test_set!r}] must list other sets, got {list(train_sets)}")
        scored = [r for r in rdms if r.split("/", 1)[0] == test_set and "/" in r]
        if not scored:
            raise DataError(f"{where}: args.predict names set {test_set!r} but the dataset has no ROI "
                            f"'{test_set}/<roi>' (ROIs: {sorted(rdms)})")
        for roi in scored:
            base = roi.split("/", 1)[1]
            train = {f"{s}/{base}": np.arange(rdms[f"{s}/{base}"].shape[1]) for s in train_sets if f"{s}/{base}" in rdms}
            if len(train) != len(train_sets):
                raise DataError(f"{where}: args.predict: ROI {base!r} is missing from training set(s) "
                                f"{[s for s in train_sets if f'{s}/{base}' not in rdms]}")
            folds.append(RDMFold(roi=roi, test=np.arange(rdms[roi].shape[1]), train=train, subjects="held_out"))
    return folds


class AllSubjectsRDMDataset(RDMDataset):
    """RDM targets of every subject in one job (subject ``all``): RSA heads choose layers leave-one-subject-out
    and the Algonauts score averages over subjects, so per-subject jobs would only repeat the work.
    Subclasses whose args derive from :class:`RDMProtocolArgs` get the held-out-image protocol attached."""

    @property
    @abstractmethod
    def _targets(self) -> RDMTargets:
        """All subjects' RDMs (subclasses load them once, e.g. as a cached property)."""

    def subjects(self) -> list[str]:
        return ["all"]

    def targets(self, subject: str) -> RDMTargets:
        if subject != "all":
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only 'all')")
        t = self._targets
        a = self.args
        if not isinstance(a, RDMProtocolArgs) or a.images == "seen":
            if isinstance(a, RDMProtocolArgs) and a.predict:
                raise DataError(f"dataset {self.ctx.entry.name!r}: args.predict needs images: held_out")
            return t
        where = f"dataset {self.ctx.entry.name!r}"
        folds = (transfer_folds(t.rdms, a.predict, where) if a.predict
                 else image_folds(t.rdms, t.stimulus_idx, a.image_folds, self.ctx.seed))
        return dataclasses.replace(t, folds=folds)

    def noise_ceilings(self) -> dict[str, tuple[float, float]]:
        """ROI → (lower, upper) noise ceiling on the R² (squared Spearman) scale; needs ≥ 2 subjects."""
        from harness.kit.ceilings import noise_ceiling_rdm
        from harness.kit.scoring import upper

        return {roi: noise_ceiling_rdm(upper(r)) for roi, r in self._targets.rdms.items()}
