"""The seam between the runner and where jobs are computed.

The runner owns planning, resuming and the database; an executor only decides where and in which order
the work units run, and hands each job's rows back to the runner's ``write`` callback in the driver process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.executors.work import JobResult, WorkUnit
from harness.factory import Factory
from harness.plan import Job

#: called once per finished job, in the driver process; commits the job's rows in one transaction
WriteFn = Callable[[JobResult], None]
#: called when a job starts, where the executor can tell (progress display)
StartFn = Callable[[Job], None]


@dataclass(frozen=True)
class TaskInfo:
    """One row of ``--dry-run``: a task, what it waits for, and the resources it requests."""

    uid: str
    label: str
    after: str | None
    resources: dict[str, float]


class Executor(Protocol):
    """Runs work units and reports each job's rows to ``write``; whole units or nothing per job."""

    #: also the ``--executor`` value
    name: str

    def units(self, jobs: Sequence[Job]) -> list[WorkUnit]:
        """How this executor groups the jobs still to do into units (see ``plan_units``)."""
        ...

    def run(self, factory: Factory, units: Sequence[WorkUnit], write: WriteFn, on_start: StartFn | None = None) -> None:
        """Compute every unit and call ``write`` for each of its jobs; Ctrl-C stops it, leaving written jobs."""
        ...

    def describe(self, units: Sequence[WorkUnit]) -> list[TaskInfo]:
        """The task graph this executor would submit (for ``--dry-run``), without running anything."""
        ...
