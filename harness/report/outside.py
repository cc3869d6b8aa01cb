"""What the report needs that the database does not hold, read the way the runner reads it.

The leaderboard stores scores, selections and per-unit values, not the brain data: subjects' RDMs,
voxel coordinates and stimuli come from the dataset plugins (through the same :class:`Factory` the
runner uses), and model RDMs are recomputed from the token cache entry a job recorded
(``jobs.tokens_key``) with the head arguments the job recorded (``jobs.config``). Every figure that
uses this says so in its caption; with ``outside=None`` those figures are omitted with a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.cache import TokenCache
from harness.contracts import Dataset, RDMTargets, VoxelTargets
from harness.errors import HarnessError
from harness.kit.scoring import rdm_from_features

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
        """The voxel table (voxel_id, roi, x, y[, z]) of one subject, when the dataset has coordinates."""
        ds = self.dataset(name)
        if ds is None or ds.target_kind != "voxels" or subject not in ds.subjects():
            return None
        t = ds.targets(subject)
        if not isinstance(t, VoxelTargets) or not {"x", "y"} <= set(t.voxels.columns):
            return None
        return t.voxels

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

    def model_rdm(self, tokens_key: str, config_json: str, layer: str, stimuli: np.ndarray | None = None) -> np.ndarray | None:
        """The RDM a layer-wise RSA job built for ``layer``: 1 − Pearson r between stimuli's features,
        features as the job's head arguments say (``features``: local / global / local+global; local maps
        average-pooled to at most ``pool``×``pool``). None when the cache entry is gone."""
        store = TokenCache(self.factory.settings.cache_dir).get(tokens_key) if tokens_key else None
        if store is None or layer not in store.layers:
            return None
        args: dict[str, Any] = json.loads(config_json).get("head", {}).get("args", {})
        kind, pool = str(args.get("features", "local")), args.get("pool")
        parts = []
        if "local" in kind:
            import torch
            import torch.nn.functional as F

            loc = torch.from_numpy(np.array(store.local(layer), dtype=np.float32))
            if pool is not None and max(loc.shape[-2:]) > pool:
                loc = F.adaptive_avg_pool2d(loc, (min(pool, loc.shape[-2]), min(pool, loc.shape[-1])))
            parts.append(loc.reshape(len(loc), -1).numpy())
        if "global" in kind:
            parts.append(np.asarray(store.global_(layer), dtype=np.float32))
        feats = np.concatenate(parts, axis=1)
        return rdm_from_features(feats if stimuli is None else feats[stimuli])
