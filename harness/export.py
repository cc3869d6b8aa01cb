"""Export a job's predicted RDMs: the Algonauts 2019 challenge submission (``.mat``) and a plain ``.npz``.

The devkit (``testSub_fmri.py``) loads a submission ``.mat`` holding ``EVC_RDMs`` and ``IT_RDMs``, each one
N×N RDM over the test images in the challenge's order, and scores it as the mean over subjects of the
squared Spearman r between lower triangles, divided by the published (upper) noise ceiling. A harness
job qualifies when one model predicted every image pair of a set for every subject alike: held-out
subjects and images (a dataset's ``predict``), or any protocol whose model RDM is shared by the subjects.
The ``.npz`` always works: per ROI the subjects × N × N stack and the positions each fold scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import model_rdms
from harness.errors import DataError
from harness.store import Store


@dataclass(frozen=True)
class JobRDMs:
    job_id: str
    backbone: str
    head: str
    dataset: str
    stored: model_rdms.StoredRDMs


def find_job(store: Store, home: Path, backbone: str, head: str, dataset: str) -> JobRDMs:
    """The finished RDM job of backbone × head × dataset (the latest, if rerun under another config)."""
    rows = store.query("SELECT job_id, model_rdms FROM jobs WHERE status = 'done' AND backbone = ? AND head = ? "
                       "AND dataset = ? ORDER BY finished_at DESC", [backbone, head, dataset])
    if rows.empty:
        raise DataError(f"{store.path}: no finished job {backbone} × {head} × {dataset}; run it first")
    digest = rows["model_rdms"].iloc[0]
    if not isinstance(digest, str) or not digest:
        raise DataError(f"job {rows['job_id'].iloc[0]} ({backbone} × {head} × {dataset}) kept no model RDMs "
                        "(not an RDM job, or run before model RDMs were kept: rerun it)")
    return JobRDMs(str(rows["job_id"].iloc[0]), backbone, head, dataset, model_rdms.load(home, digest))


def submission(stored: model_rdms.StoredRDMs, prefix: str = "") -> dict[str, np.ndarray]:
    """``<ROI>_RDMs`` → N×N for the ROIs named ``<prefix><ROI>`` (e.g. prefix ``"78/"`` of a joined dataset)."""
    out: dict[str, np.ndarray] = {}
    for roi, rdm in stored.rdms.items():
        if not roi.startswith(prefix) or "/" in roi[len(prefix):]:
            continue
        name = f"{roi[len(prefix):]}_RDMs"
        if not np.isfinite(rdm).all():
            raise DataError(f"ROI {roi!r}: the model RDM is defined only within held-out-image fold blocks "
                            f"({len(stored.folds[roi])} folds); a submission needs one model predicting every pair "
                            "(a dataset with args.predict). The .npz export keeps the blocks.")
        if not np.allclose(rdm, rdm[0], rtol=0, atol=0):
            raise DataError(f"ROI {roi!r}: subjects were predicted by different models (subject folds); a "
                            "submission is one RDM. Use a dataset whose predict holds out the subjects, or the .npz.")
        out[name] = np.asarray(rdm[0], np.float64)
    if not out:
        raise DataError(f"no ROI of the job matches prefix {prefix!r} (ROIs: {sorted(stored.rdms)})")
    return out


def write_mat(path: Path, rdms: dict[str, np.ndarray]) -> None:
    from scipy.io import savemat

    savemat(str(path), rdms, do_compression=True)


def write_npz(path: Path, job: JobRDMs) -> None:
    arrays: dict[str, np.ndarray] = {"subject_ids": np.array(job.stored.subject_ids, dtype=str),
                                     "rois": np.array(list(job.stored.rdms), dtype=str),
                                     "job": np.array([job.job_id, job.backbone, job.head, job.dataset], dtype=str)}
    for i, (roi, rdm) in enumerate(job.stored.rdms.items()):
        arrays[f"rdm_{i}"] = rdm
        for k, pos in enumerate(job.stored.folds[roi]):
            arrays[f"test_{i}_{k}"] = pos
    np.savez_compressed(path, **arrays)
