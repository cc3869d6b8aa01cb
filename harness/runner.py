"""plan → extract tokens (cached) → fit head → score → store, one job at a time.

Each job commits in one transaction, so a killed run leaves only whole jobs and
the next run resumes exactly where it stopped. A job that raises is stored as
``failed`` with its error and the run goes on.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import __version__
from harness.cache import TokenCache, TokenStore
from harness.contracts import Backbone, Dataset, Head, HeadInput, HeadOutput, Metric, MetricContext, Score
from harness.errors import HarnessError
from harness.factory import Factory
from harness.plan import Job, Plan
from harness.specs import LIVE_BACKBONE, TOKENS
from harness.store import Store

log = logging.getLogger("harness")


@dataclass
class RunSummary:
    run_id: str
    done: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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


ProgressFn = Callable[[str, int, int], None]


class Runner:
    def __init__(self, factory: Factory, store: Store, progress: ProgressFn | None = None) -> None:
        self._run_id = ""
        self.factory = factory
        self.store = store
        self.progress = progress or (lambda label, done, total: None)

    def run(self, plan: Plan, argv: str = "") -> RunSummary:
        summary = RunSummary(run_id=uuid.uuid4().hex[:12])
        self._run_id = summary.run_id
        with self.store.run_lock():
            self.store.migrate()
            self.store.mark_killed_runs()
            TokenCache(self.factory.settings.cache_dir).clean_stale()
            self.store.start_run(summary.run_id, argv, __version__, self.factory.device)
            finished = self.store.finished_jobs()
            status = "failed"
            try:
                self._record_entries(plan)
                groups = itertools.groupby(plan.jobs, key=lambda j: (j.dataset.name, j.backbone.name))
                for (ds_name, bb_name), jobs_iter in groups:
                    jobs = list(jobs_iter)
                    todo = [j for j in jobs if j.job_id not in finished]
                    summary.cached += len(jobs) - len(todo)
                    if todo:
                        self._run_group(ds_name, bb_name, todo, summary)
                status = "done"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            finally:
                self.store.finish_run(summary.run_id, status)
        return summary

    def _record_entries(self, plan: Plan) -> None:
        seen: dict[str, dict[str, Any]] = {}
        for j in plan.jobs:
            configs = {j.backbone.name: j.config["backbone"], j.head.name: j.config["head"],
                       j.dataset.name: j.config["dataset"], **j.config["metrics"]}
            for e in (j.backbone, j.head, j.dataset, *j.metrics):
                if e.name not in seen:
                    spec = self.factory.catalog.get(e.kind, e.plugin).spec
                    seen[e.name] = {"name": e.name, "kind": e.kind, "plugin": e.plugin, "plugin_version": spec.version,
                                    "random_init": e.random_init, "parent": e.parent, "args": e.args, "meta": e.meta,
                                    "config": configs[e.name], "tags": list(e.tags)}
        self.store.upsert_entries(list(seen.values()))

    def _run_group(self, ds_name: str, bb_name: str, jobs: list[Job], summary: RunSummary) -> None:
        """One dataset × backbone: tokens are extracted once and shared by every head and subject."""
        f = self.factory
        t0 = time.perf_counter()
        try:
            dataset = f.dataset(ds_name)
            stimuli = dataset.stimuli()
            backbone = f.backbone(bb_name)
            tokens = None
            needs_tokens = any(TOKENS in f.catalog.get("head", j.head.plugin).spec.consumes for j in jobs)
            if needs_tokens:
                tokens = f.tokens_for(bb_name, stimuli)
        except Exception as exc:
            err = _one_line(exc)
            for j in jobs:
                self._write_failed(j, summary, err, time.perf_counter() - t0)
            return
        for j in jobs:
            self._run_job(j, dataset, stimuli, backbone, tokens, summary)
        f.release(bb_name)

    def _run_job(self, job: Job, dataset: Dataset, stimuli: Any, backbone: Backbone, tokens: Any, summary: RunSummary) -> None:
        f = self.factory
        t0 = time.perf_counter()
        started = _now()
        self.progress(job.label, 0, 1)
        try:
            targets = dataset.targets(job.subject)
            targets.validate(len(stimuli), f"dataset {job.dataset.name} subject {job.subject}")
            head = f.build(job.head)
            assert isinstance(head, Head)
            live = LIVE_BACKBONE in head.spec.consumes
            report = f.progress

            def head_progress(what: str, frac: float) -> None:
                if report is not None:
                    report(f"fit {job.head.name} on {job.backbone.name}/{job.dataset.name}", round(100 * frac), 100)

            out = head.fit_predict(
                HeadInput(targets=targets, stimuli=stimuli, tokens=tokens, backbone=backbone if live else None,
                          device=f.device, seed=f.seed, progress=head_progress)
            )
            scores: list[Score] = []
            for m in job.metrics:
                metric = f.build(m)
                assert isinstance(metric, Metric)
                for s in metric.score(out, targets, MetricContext(dataset=job.dataset.name, subject=job.subject, seed=f.seed)):
                    s.metric = m.name if s.metric == metric.spec.id else f"{m.name}.{s.metric}" if s.metric else m.name
                    scores.append(s)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log.debug("job %s failed:\n%s", job.label, traceback.format_exc())
            self._write_failed(job, summary, _one_line(exc), time.perf_counter() - t0)
            return
        if isinstance(tokens, TokenStore) and not tokens.trusted():  # files changed while the job ran
            self._write_failed(job, summary, f"token cache entry {tokens.path} was damaged while this job ran "
                               "(quarantined); rerun to extract it again", time.perf_counter() - t0)
            return
        n_excluded = int(out.info.get("n_excluded", 0)) + int(getattr(targets, "n_excluded", 0))
        row = self._job_row(job, "done", None, time.perf_counter() - t0, started, backbone, tokens, n_excluded)
        self.store.write_job(row, score_rows(job.job_id, job.subject, scores), selection_rows(job.job_id, out),
                             unit_score_rows(job.job_id, scores))
        summary.done += 1
        self.progress(job.label, 1, 1)

    def _job_row(self, job: Job, status: str, error: str | None, wall: float, started: dt.datetime,
                 backbone: Backbone | None, tokens: Any, n_excluded: int = 0) -> dict[str, Any]:
        digest = None
        if backbone is not None:
            try:
                digest = backbone.weights_digest()
            except Exception:
                digest = None
        return {"job_id": job.job_id, "run_id": self._run_id, "backbone": job.backbone.name, "head": job.head.name,
                "dataset": job.dataset.name, "subject": job.subject, "status": status, "error": error, "wall_s": wall,
                "config": job.config, "random_init": job.backbone.random_init, "weights_digest": digest,
                "tokens_key": getattr(tokens, "key", None), "n_excluded": n_excluded, "started_at": started,
                "finished_at": _now()}

    def _write_failed(self, job: Job, summary: RunSummary, err: str, wall: float) -> None:
        self.store.write_job(self._job_row(job, "failed", err, wall, _now(), None, None), [], [])
        summary.failed.append((job.label, err))
        self.progress(job.label, 1, 1)


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return msg if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {msg}"


def argv_string() -> str:
    return " ".join(sys.argv)
