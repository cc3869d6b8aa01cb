"""Run the work units as Ray tasks: same plan, same job ids, same rows, one writer.

Each unit (a dataset × backbone group, or one head of a split group) is one Ray task requesting
``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs. Workers rebuild the factory from a picklable recipe, read
and fill the token cache under the shared ``HARNESS_HOME``, and *return* the jobs' rows; the driver commits
each job in one transaction as it would locally, so ``harness sql`` works during a Ray run as during a
local one. A worker that dies mid-task (OOM killer, preempted node, ``kill -9``) makes Ray rerun the task
(``max_retries``); nothing of the lost attempt reached the database, so no row is duplicated or missing.
Ctrl-C cancels every submitted task (those still running a few seconds later have their worker
processes killed) and leaves the jobs already committed. Ray is imported only here, and only when this executor runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.errors import HarnessError
from harness.executors.base import StartFn, TaskInfo, WriteFn
from harness.executors.recipe import FactoryRecipe
from harness.executors.work import JobResult, WorkUnit, extract_unit, failed_result, one_line, plan_units, run_unit
from harness.factory import Factory
from harness.plan import Job


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray needs Ray: pip install 'harness[ray]'") from None
    return ray


def execute(recipe: FactoryRecipe, unit: WorkUnit, threads: int, fit_batch: bool, *_after: Any) -> list[JobResult] | str | None:
    """The Ray task body (runs in a worker process). ``_after`` are the results of the units this one waits for:
    Ray starts the task only once they exist, which is the point of passing them."""
    import torch

    from harness.extract import resolve_precision

    torch.set_num_threads(max(1, threads))
    f = recipe.build()
    if f.device.startswith("cuda") and not torch.cuda.is_available():
        err = "worker has no CUDA device for a GPU job (did the task request GPUs? see --gpus-per-job)"
        return err if unit.kind == "extract" else [failed_result(j, err, 0.0) for j in unit.jobs]
    if fit_batch and f.device.startswith("cuda"):
        from harness.executors.resources import fitted_batch_size

        try:
            bb = f.backbone(unit.backbone)
            size = fitted_batch_size(bb, f.device, resolve_precision(f.extraction.precision, bb, f.device))
            f.extraction = replace(f.extraction, batch_size=size)
        except Exception:  # a probe that fails leaves the configured batch size; extraction reports real errors
            pass
    if unit.kind == "extract":
        return extract_unit(f, unit)
    return list(run_unit(f, unit))


def _error_of(exc: BaseException) -> str:
    """A task that raised: the cause's one line (Ray wraps it in a multi-line RayTaskError)."""
    cause = getattr(exc, "cause", None)
    return f"ray: {one_line(cause if isinstance(cause, BaseException) else exc)}"


@dataclass
class RayExecutor:
    #: ``None``: Ray's default (joins $RAY_ADDRESS or a cluster `ray start` started on this machine, else starts
    #: a local instance for this run); ``auto``, ``host:port`` or ``ray://host:port`` join a running cluster
    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    split_heads: bool = False
    #: on CUDA workers, fit the extraction batch to the free device memory (no explicit --batch-size given)
    fit_batch: bool = False
    #: reruns of a task whose worker died (system failures only: a raising job is recorded, not retried)
    max_retries: int = 3
    name: str = "ray"
    #: seconds a cancelled task gets to stop by itself before its worker process is killed
    cancel_grace_s: float = 5.0
    #: extra ``ray.init`` keywords when this executor starts Ray itself (tests: ``num_cpus=2``)
    init_kwargs: dict[str, Any] | None = None

    def units(self, jobs: Sequence[Job]) -> list[WorkUnit]:
        """Every job of a dataset × backbone in one task (tokens extracted once per task), or split by head."""
        return plan_units(jobs, self.split_heads)

    def resources(self, unit: WorkUnit) -> dict[str, float]:
        res = {"CPU": self.cpus_per_job}
        if self.gpus_per_job:
            res["GPU"] = self.gpus_per_job
        return res

    def describe(self, units: Sequence[WorkUnit]) -> list[TaskInfo]:
        return [TaskInfo(u.uid, u.label, u.after, self.resources(u)) for u in units]

    def run(self, factory: Factory, units: Sequence[WorkUnit], write: WriteFn, on_start: StartFn | None = None) -> None:
        ray = require_ray()
        own = not ray.is_initialized()
        if own:
            ray.init(address=self.address, include_dashboard=False, **(self.init_kwargs or {}))
        try:
            self._run(ray, factory, units, write)
        finally:
            if own:
                ray.shutdown()

    def _run(self, ray: Any, factory: Factory, units: Sequence[WorkUnit], write: WriteFn) -> None:
        task = ray.remote(execute)
        recipe = ray.put(FactoryRecipe.of(factory))
        threads = max(1, int(self.cpus_per_job))
        by_uid: dict[str, Any] = {}
        groups: dict[Any, WorkUnit] = {}
        for u in units:
            after = [by_uid[u.after]] if u.after else []
            ref = task.options(name=u.uid, num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job,
                               max_retries=self.max_retries, retry_exceptions=False).remote(
                recipe, u, threads, self.fit_batch, *after)
            by_uid[u.uid] = ref
            if u.kind == "group":
                groups[ref] = u
        pending = list(groups)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    for result in self._results(ray, ref, groups[ref]):
                        write(result)
        except BaseException:
            self._cancel(ray, list(by_uid.values()))
            raise

    def _cancel(self, ray: Any, refs: list[Any]) -> None:
        """Interrupt every task (a KeyboardInterrupt inside it: the worker survives for the next run); kill the
        workers of those still running after ``cancel_grace_s`` (stuck in native code), or at a second Ctrl-C."""
        for ref in refs:
            ray.cancel(ref, force=False)
        try:
            _, running = ray.wait(refs, num_returns=len(refs), timeout=self.cancel_grace_s)
        except KeyboardInterrupt:
            running = refs
        for ref in running:
            ray.cancel(ref, force=True)

    @staticmethod
    def _results(ray: Any, ref: Any, unit: WorkUnit) -> list[JobResult]:
        t0 = time.perf_counter()
        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as exc:  # retries used up, or the task itself could not run
            err = _error_of(exc)
            return [failed_result(j, err, time.perf_counter() - t0) for j in unit.jobs]
        assert isinstance(out, list)
        return out
