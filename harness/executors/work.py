"""The unit of work every executor runs: one dataset × backbone group, computed into rows, never stored.

A group extracts its tokens once and shares them with every head and subject in it; a large group may be
split into one unit per head, each reading the tokens a preceding ``extract`` unit put in the shared cache.
Computing a unit returns plain rows (:class:`JobResult`), so the process that computes them need not be the
one that writes the database: DuckDB has one writer, the driver.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import model_rdms
from harness.cache import TokenStore
from harness.contracts import Backbone, Dataset, Head, HeadInput, HeadOutput, Metric, MetricContext, RDMTargets, Score
from harness.errors import HarnessError
from harness.factory import Factory
from harness.plan import Job
from harness.specs import LIVE_BACKBONE, TOKENS

log = logging.getLogger("harness")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def one_line(exc: BaseException) -> str:
    """The error stored with a failed job: the message's first line, prefixed by the type unless ours."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return msg if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {msg}"


@dataclass(frozen=True)
class WorkUnit:
    """Jobs computed together in one process. ``kind`` is ``group`` (fit + score the jobs) or ``extract``
    (fill the shared token cache for the group, no jobs); ``after`` names the unit that must finish first."""

    uid: str
    dataset: str
    backbone: str
    jobs: tuple[Job, ...] = ()
    kind: str = "group"
    after: str | None = None

    @property
    def label(self) -> str:
        heads = sorted({j.head.name for j in self.jobs})
        what = "extract tokens" if self.kind == "extract" else f"{len(self.jobs)} jobs: {', '.join(heads)}"
        return f"{self.backbone} × {self.dataset} ({what})"


@dataclass
class JobResult:
    """Everything one job writes: its ``jobs`` row (``run_id`` is filled in by the writer) and its child rows."""

    job: Job
    row: dict[str, Any]
    scores: list[dict[str, Any]] = field(default_factory=list)
    selections: list[dict[str, Any]] = field(default_factory=list)
    unit_scores: list[dict[str, Any]] = field(default_factory=list)
    #: name → path of files the head saved (content-addressed, under HARNESS_HOME)
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.row["status"] == "failed"

    @property
    def error(self) -> str | None:
        return self.row["error"]


def plan_units(jobs: Iterable[Job], split_heads: bool = False, consecutive: bool = False) -> list[WorkUnit]:
    """Jobs of one dataset × backbone form a group, in order of first appearance; ``consecutive`` groups only
    runs of neighbouring jobs (the planner emits dataset → head → backbone, so that is one head per group: the
    local loop's order, where the token cache links the groups). ``split_heads``: one unit per head after an
    ``extract`` unit, so a big group spreads over workers."""
    runs = [(k, list(it)) for k, it in itertools.groupby(jobs, key=lambda j: (j.dataset.name, j.backbone.name))]
    if not consecutive:
        gathered: dict[tuple[str, str], list[Job]] = {}
        for k, js in runs:
            gathered.setdefault(k, []).extend(js)
        runs = list(gathered.items())
    units: list[WorkUnit] = []
    seen: dict[str, int] = {}
    for (ds, bb), group in runs:
        base = f"{ds}/{bb}"
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:  # the same pair again later in a consecutive plan
            base = f"{base}#{seen[base]}"
        heads = list(dict.fromkeys(j.head.name for j in group))
        if not split_heads or len(heads) < 2:
            units.append(WorkUnit(base, ds, bb, tuple(group)))
            continue
        units.append(WorkUnit(f"{base}/extract", ds, bb, kind="extract"))
        for h in heads:
            units.append(WorkUnit(f"{base}/{h}", ds, bb, tuple(j for j in group if j.head.name == h),
                                  after=f"{base}/extract"))
    return units


def selection_rows(job_id: str, out: HeadOutput) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if out.layer_weights is not None:
        w = np.asarray(out.layer_weights, dtype=np.float64)
        n_layers = w.shape[1]
        for u, (unit, roi) in enumerate(zip(out.unit_ids, out.unit_rois, strict=True)):
            for li in np.flatnonzero(w[u] > 0):
                rows.append(
                    {"job_id": job_id, "unit": unit, "roi": roi, "selector": "layer", "layer": out.layers[li],
                     "layer_index": int(li), "n_layers": n_layers, "weight": float(w[u, li]), "value": None}
                )
    for r in out.selections:
        rows.append({"job_id": job_id, "n_layers": len(out.layers), **r})
    return rows


def score_rows(job_id: str, subject: str, scores: list[Score]) -> list[dict[str, Any]]:
    return [
        {"job_id": job_id, "metric": s.metric, "roi": s.roi, "subject": s.subject, "raw": s.raw, "ceiling": s.ceiling,
         "normalised": s.normalised, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n, "p_value": s.p_value,
         "extra": s.extra}
        for s in scores
    ]


def unit_score_rows(job_id: str, scores: list[Score]) -> list[dict[str, Any]]:
    return [{"job_id": job_id, "metric": s.metric, "roi": s.roi, "unit": str(u), "value": float(v)}
            for s in scores for u, v in s.units.items()]


def job_row(job: Job, status: str, error: str | None, wall: float, started: dt.datetime,
            backbone: Backbone | None, tokens: Any, n_excluded: int = 0) -> dict[str, Any]:
    digest = None
    if backbone is not None:
        try:
            digest = backbone.weights_digest()
        except Exception:
            digest = None
    return {"job_id": job.job_id, "run_id": None, "backbone": job.backbone.name, "head": job.head.name,
            "dataset": job.dataset.name, "subject": job.subject, "status": status, "error": error, "wall_s": wall,
            "config": job.config, "random_init": job.backbone.random_init, "weights_digest": digest,
            "tokens_key": getattr(tokens, "key", None), "n_excluded": n_excluded, "started_at": started,
            "finished_at": now()}


def job_protocol(out: HeadOutput, targets: Any) -> dict[str, str | None]:
    """``images``/``subjects``: held_out | seen. Voxel heads fit train images and score test images of the same
    subject; RDM heads say what they did (``info['protocol']``), and one that does not counts as having seen both."""
    if isinstance(targets, RDMTargets):
        p = out.info.get("protocol") or {"images": "seen", "subjects": "seen"}
        return {"images": p.get("images"), "subjects": p.get("subjects")}
    return {"images": "held_out", "subjects": "seen"}


def failed_result(job: Job, error: str, wall: float, started: dt.datetime | None = None) -> JobResult:
    """``started``: when the job (or its group's setup, if that failed) began, so wall time and times agree
    (now, for a unit that never started)."""
    return JobResult(job, job_row(job, "failed", error, wall, started or now(), None, None))


def extract_unit(factory: Factory, unit: WorkUnit) -> str | None:
    """Fill the shared token cache for a split group; returns the error instead of raising, so the head units
    that wait on it still run and record the failure themselves."""
    try:
        factory.tokens_for(unit.backbone, factory.dataset(unit.dataset).stimuli())
        return None
    except Exception as exc:
        return one_line(exc)
    finally:
        factory.release(unit.backbone)


def run_unit(factory: Factory, unit: WorkUnit, on_start: Callable[[Job], None] | None = None) -> Iterator[JobResult]:
    """One dataset × backbone: tokens are extracted once and shared by every head and subject.

    Yields each job's rows as soon as it is scored (the local executor commits it right away); a job that
    raises yields a ``failed`` row with its one-line error and the unit goes on. Ctrl-C propagates.
    """
    f = factory
    jobs = unit.jobs
    t0, started = time.perf_counter(), now()
    try:
        dataset = f.dataset(unit.dataset)
        stimuli = dataset.stimuli()
        backbone = f.backbone(unit.backbone)
        tokens = None
        if any(TOKENS in f.catalog.spec("head", j.head.plugin).consumes for j in jobs):
            tokens = f.tokens_for(unit.backbone, stimuli)
    except Exception as exc:
        err = one_line(exc)
        for j in jobs:
            yield failed_result(j, err, time.perf_counter() - t0, started)
        return
    for j in jobs:
        if on_start is not None:
            on_start(j)
        yield run_job(f, j, dataset, stimuli, backbone, tokens)
    f.release(unit.backbone)


def run_job(f: Factory, job: Job, dataset: Dataset, stimuli: Any, backbone: Backbone, tokens: Any) -> JobResult:
    t0 = time.perf_counter()
    started = now()
    try:
        targets = dataset.targets(job.subject)
        targets.validate(len(stimuli), f"dataset {job.dataset.name} subject {job.subject}")
        head = f.build_as(job.head, Head)
        live = LIVE_BACKBONE in head.spec.consumes
        report = f.progress

        def head_progress(what: str, frac: float) -> None:
            if report is not None:
                report(f"fit {job.head.name} on {job.backbone.name}/{job.dataset.name}", round(100 * frac), 100)

        out = head.fit_predict(
            HeadInput(targets=targets, stimuli=stimuli, tokens=tokens, backbone=backbone if live else None,
                      device=f.device, seed=f.seed, progress=head_progress,
                      view_tokens=f.view_tokens_for(backbone, stimuli) if live else None)
        )
        scores: list[Score] = []
        for m in job.metrics:
            metric = f.build_as(m, Metric)
            for s in metric.score(out, targets, MetricContext(dataset=job.dataset.name, subject=job.subject, seed=f.seed)):
                s.metric = m.name if s.metric == metric.spec.id else f"{m.name}.{s.metric}" if s.metric else m.name
                scores.append(s)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log.debug("job %s failed:\n%s", job.label, traceback.format_exc())
        return failed_result(job, one_line(exc), time.perf_counter() - t0, started)
    if isinstance(tokens, TokenStore) and not tokens.trusted():  # files changed while the job ran
        return failed_result(job, f"token cache entry {tokens.path} was damaged while this job ran "
                             "(quarantined); rerun to extract it again", time.perf_counter() - t0, started)
    n_excluded = int(out.info.get("n_excluded", 0)) + int(getattr(targets, "n_excluded", 0))
    row = job_row(job, "done", None, time.perf_counter() - t0, started, backbone, tokens, n_excluded)
    row.update(job_protocol(out, targets))
    if isinstance(targets, RDMTargets) and out.model_rdms:
        row["model_rdms"] = model_rdms.save(f.settings.home, out.model_rdms, targets)
    return JobResult(job, row, score_rows(job.job_id, job.subject, scores), selection_rows(job.job_id, out),
                     unit_score_rows(job.job_id, scores), dict(out.artifacts or {}))
