"""Predicted RDMs kept content-addressed under ``$HARNESS_HOME/model_rdms`` so any RDM score can be recomputed
outside the harness (``harness export`` writes them as a challenge submission).

One ``<sha256>.npz`` per job output holds, for ROI number i, ``rdm_<i>`` (subjects × N × N, NaN for image
pairs a held-out-image fold did not predict) and ``test_<i>_<k>`` (the positions fold k scored among
themselves), plus ``rois`` and ``subject_ids``. The digest is over those bytes, so the jobs row's
``model_rdms`` column names exactly one file and identical predictions share it.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.contracts import RDMTargets
from harness.errors import DataError


@dataclass
class StoredRDMs:
    """The model RDMs of one job, as stored."""

    rdms: dict[str, np.ndarray]  #: ROI → subjects × N × N
    subject_ids: list[str]
    folds: dict[str, list[np.ndarray]]  #: ROI → positions each fold scored (one block of all positions: no folds)


def folder(home: Path) -> Path:
    return Path(home) / "model_rdms"


def save(home: Path, model_rdms: dict[str, np.ndarray], targets: RDMTargets) -> str:
    """Write the job's model RDMs (and how they are scored) once; returns the content digest."""
    arrays: dict[str, np.ndarray] = {"rois": np.array(list(model_rdms), dtype=str),
                                     "subject_ids": np.array(targets.subject_ids, dtype=str)}
    for i, (roi, rdm) in enumerate(model_rdms.items()):
        arrays[f"rdm_{i}"] = np.asarray(rdm, np.float64)
        blocks = [f.test for f in targets.folds if f.roi == roi] or [np.arange(np.asarray(rdm).shape[-1])]
        for k, pos in enumerate(blocks):
            arrays[f"test_{i}_{k}"] = np.asarray(pos, np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = folder(home) / f"{digest}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a killed run never leaves half a file under the digest's name
    return digest


def load(home: Path, digest: str) -> StoredRDMs:
    path = folder(home) / f"{digest}.npz"
    if not path.is_file():
        raise DataError(f"{path}: model RDMs of digest {digest[:12]}… missing (HARNESS_HOME={home})")
    with np.load(path, allow_pickle=False) as z:
        rois = [str(r) for r in z["rois"]]
        rdms = {roi: z[f"rdm_{i}"] for i, roi in enumerate(rois)}
        folds = {roi: [z[k] for k in sorted((k for k in z.files if k.startswith(f"test_{i}_")),
                                            key=lambda k: int(k.rsplit("_", 1)[1]))] for i, roi in enumerate(rois)}
        return StoredRDMs(rdms=rdms, subject_ids=[str(s) for s in z["subject_ids"]], folds=folds)
