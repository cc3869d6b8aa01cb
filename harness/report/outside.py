"""What the report needs that the database does not hold, read the way the runner reads it.

The leaderboard stores scores, selections and per-unit values, not the brain data: subjects' RDMs,
voxel coordinates and stimuli come from the dataset plugins (through the same :class:`Factory` the
runner uses), and model RDMs are read from the file a job stored (``jobs.model_rdms``, a content digest
under ``$HARNESS_HOME/model_rdms``). Every figure that
uses this says so in its caption; with ``outside=None`` those figures are omitted with a note.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.contracts import Dataset, RDMTargets, VoxelTargets
from harness.errors import HarnessError

#: voxel-table columns that place a unit on the fsaverage surface (NSD in fsaverage space, Algonauts 2023)
SURFACE_COLUMNS = frozenset({"hemi", "fsaverage_index"})

if TYPE_CHECKING:
    from PIL import Image

    from harness.factory import Factory


@dataclass
class Outside:
    factory: Factory
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, name: str) -> Dataset | None:
        """The dataset plugin of a registry entry; None when the entry or its data is not here."""
        if name not in self._datasets:
            try:
                ds = self.factory.dataset(name)
            except HarnessError:
                return None
            if ds.unavailable_reason() is not None:
                return None
            self._datasets[name] = ds
        return self._datasets[name]

    def subject_rdms(self, name: str) -> RDMTargets | None:
        ds = self.dataset(name)
        if ds is None or ds.target_kind != "rdms":
            return None
        t = ds.targets(ds.subjects()[0])
        return t if isinstance(t, RDMTargets) else None

    def voxels(self, name: str, subject: str) -> pd.DataFrame | None:
        """The voxel table of one subject when its units can be placed: coordinates (voxel_id, roi, x, y[, z]) for
        the flat map, and/or fsaverage vertices (``hemi`` lh/rh, ``fsaverage_index``) for the surface view."""
        ds = self.dataset(name)
        if ds is None or ds.target_kind != "voxels" or subject not in ds.subjects():
            return None
        t = ds.targets(subject)
        if not isinstance(t, VoxelTargets):
            return None
        cols = set(t.voxels.columns)
        return t.voxels if {"x", "y"} <= cols or cols >= SURFACE_COLUMNS else None

    def categories(self, name: str) -> list[str] | None:
        """Per-stimulus category labels, for datasets whose plugin offers ``labels()`` with a ``category``
        column (Kriegeskorte 92); an optional extension of the dataset contract, so duck-typed."""
        ds = self.dataset(name)
        labels = getattr(ds, "labels", None)
        if ds is None or not callable(labels):
            return None
        df = labels()
        return [str(c) for c in df["category"]] if isinstance(df, pd.DataFrame) and "category" in df else None

    def stimulus(self, name: str, index: int = 0) -> Image.Image | None:
        ds = self.dataset(name)
        if ds is None:
            return None
        st = ds.stimuli()
        return st.load(index).convert("RGB") if len(st) > index else None

    def stored_model_rdm(self, digest: str, roi: str) -> np.ndarray | None:
        """The job's predicted RDM of ``roi`` averaged over held-out subjects (NaN pairs a fold did not predict stay
        NaN); None when the file is not under this HARNESS_HOME."""
        from harness import model_rdms

        try:
            stored = model_rdms.load(self.factory.settings.home, digest)
        except HarnessError:
            return None
        if roi not in stored.rdms:
            return None
        with warnings.catch_warnings():  # all-NaN pairs (never predicted) stay NaN without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(stored.rdms[roi], axis=0)
