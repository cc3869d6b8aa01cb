"""The shared shape of RDM datasets scored in one job over all their subjects."""

from __future__ import annotations

from abc import abstractmethod

from harness.contracts import RDMDataset, RDMTargets
from harness.errors import DataError


class AllSubjectsRDMDataset(RDMDataset):
    """RDM targets of every subject in one job (subject ``all``): RSA heads choose layers leave-one-subject-out
    and the Algonauts score averages over subjects, so per-subject jobs would only repeat the work."""

    @property
    @abstractmethod
    def _targets(self) -> RDMTargets:
        """All subjects' RDMs (subclasses load them once, e.g. as a cached property)."""

    def subjects(self) -> list[str]:
        return ["all"]

    def targets(self, subject: str) -> RDMTargets:
        if subject != "all":
            raise DataError(f"dataset {self.ctx.entry.name!r}: unknown subject {subject!r} (only 'all')")
        return self._targets

    def noise_ceilings(self) -> dict[str, tuple[float, float]]:
        """ROI → (lower, upper) noise ceiling on the R² (squared Spearman) scale; needs ≥ 2 subjects."""
        from harness.kit.ceilings import noise_ceiling_rdm
        from harness.kit.scoring import upper

        return {roi: noise_ceiling_rdm(upper(r)) for roi, r in self._targets.rdms.items()}
