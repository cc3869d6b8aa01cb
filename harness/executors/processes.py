"""Run the work units in a pool of worker processes on this machine: same plan, same job ids, one writer.

Why: the trained heads' steps are many small tensor operations, which one process runs mostly on one core
whatever torch's thread count; a pool of single-threaded workers keeps every core busy. Each worker rebuilds
the driver's factory once (:class:`~harness.executors.recipe.FactoryRecipe`), shares the token cache under
``HARNESS_HOME`` (entries are written atomically) and *returns* each unit's rows; the driver commits every job in
one transaction as the local loop does, so a run killed at any point resumes without duplicate or missing
rows. A worker that dies (OOM killer, ``kill -9``) fails the units it had with a one-line error; the rerun
computes them. Ctrl-C stops the pool and leaves the jobs already committed.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from harness.executors.base import StartFn, TaskInfo, WriteFn
from harness.executors.recipe import FactoryRecipe
from harness.executors.work import JobResult, WorkUnit, failed_result, one_line, plan_units, run_unit
from harness.factory import Factory
from harness.plan import Job

_factory: Factory | None = None  #: the worker's own factory, built once by :func:`_start`


def _start(recipe: FactoryRecipe, threads: int) -> None:
    import torch

    global _factory
    torch.set_num_threads(max(1, threads))
    _factory = recipe.build()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """A driver killed outright (``kill -9``, SIGTERM) cannot stop its pool; its workers notice that they have
    been re-parented and exit instead of computing rows nobody will write."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def _compute(unit: WorkUnit) -> list[JobResult]:
    assert _factory is not None, "worker started without its factory"
    out = list(run_unit(_factory, unit))
    _factory.release_dataset(unit.dataset)
    return out


def default_workers(threads: float) -> int:
    return max(1, int((os.cpu_count() or 1) // max(1.0, threads)))


@dataclass
class ProcessExecutor:
    #: worker processes (default: this machine's cores ÷ ``threads``)
    workers: int = 0
    #: torch threads per worker
    threads: int = 1
    name: str = "processes"

    def units(self, jobs: Sequence[Job]) -> list[WorkUnit]:
        """Every job of a dataset × backbone in one unit: its tokens are read once, by one worker."""
        return plan_units(jobs)

    def describe(self, units: Sequence[WorkUnit]) -> list[TaskInfo]:
        return [TaskInfo(u.uid, u.label, u.after, {"threads": float(self.threads)}) for u in units]

    def run(self, factory: Factory, units: Sequence[WorkUnit], write: WriteFn, on_start: StartFn | None = None) -> None:
        groups = [u for u in units if u.kind == "group"]
        if not groups:
            return
        n = min(self.workers or default_workers(self.threads), len(groups))
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads or DuckDB
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_start, initargs=(FactoryRecipe.of(factory), self.threads))
        pending: dict[Future[list[JobResult]], WorkUnit] = {pool.submit(_compute, u): u for u in groups}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    unit = pending.pop(fut)
                    for result in self._results(fut, unit):
                        write(result)
        except BaseException:
            for fut in pending:
                fut.cancel()
            for proc in list(getattr(pool, "_processes", {}).values()):  # stop running units now, not after them
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    @staticmethod
    def _results(fut: Future[list[JobResult]], unit: WorkUnit) -> list[JobResult]:
        try:
            return fut.result()
        except BrokenProcessPool as exc:
            err = f"worker process died ({one_line(exc)}); rerun to compute this unit's jobs again"
        except Exception as exc:
            err = f"worker: {one_line(exc)}"
        return [failed_result(j, err, 0.0) for j in unit.jobs]
