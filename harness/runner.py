"""plan → extract tokens (cached) → fit head → score → store, one job at a time.

Each job commits in one transaction, so a killed run leaves only whole jobs and
the next run resumes exactly where it stopped. A job that raises is stored as
``failed`` with its error and the run goes on. Where the jobs are computed is the
executor's business (``harness/executors/``: this process, or a Ray cluster); the
database is written only here, by the driver.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.cache import TokenCache
from harness.executors.base import Executor
from harness.executors.local import LocalExecutor
from harness.executors.work import JobResult
from harness.factory import Factory
from harness.plan import Plan
from harness.store import Store

log = logging.getLogger("harness")


@dataclass
class RunSummary:
    run_id: str
    done: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


ProgressFn = Callable[[str, int, int], None]


class Runner:
    def __init__(self, factory: Factory, store: Store, progress: ProgressFn | None = None,
                 executor: Executor | None = None) -> None:
        self._run_id = ""
        self.factory = factory
        self.store = store
        self.progress = progress or (lambda label, done, total: None)
        #: where the units are computed (harness/executors/); the database is always written here
        self.executor: Executor = executor or LocalExecutor()

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
                todo = [j for j in plan.jobs if j.job_id not in finished]
                summary.cached = len(plan.jobs) - len(todo)
                units = self.executor.units(todo)
                self.executor.run(self.factory, units, lambda r: self._write(r, summary),
                                  on_start=lambda j: self.progress(j.label, 0, 1))
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
                    spec = self.factory.catalog.spec(e.kind, e.plugin)
                    seen[e.name] = {"name": e.name, "kind": e.kind, "plugin": e.plugin, "plugin_version": spec.version,
                                    "random_init": e.random_init, "parent": e.parent, "args": e.args, "meta": e.meta,
                                    "config": configs[e.name], "tags": list(e.tags)}
        self.store.upsert_entries(list(seen.values()))

    def _write(self, result: JobResult, summary: RunSummary) -> None:
        """The one writer: each job's rows in one transaction, whichever process computed them."""
        self.store.write_job({**result.row, "run_id": self._run_id}, result.scores, result.selections,
                             result.unit_scores, result.artifacts)
        if result.failed:
            summary.failed.append((result.job.label, result.error or ""))
        else:
            summary.done += 1
        self.progress(result.job.label, 1, 1)


def argv_string() -> str:
    return " ".join(sys.argv)
