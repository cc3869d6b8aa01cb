"""Today's loop: every unit in this process, one after the other, each job committed as soon as it is scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.executors.base import StartFn, TaskInfo, WriteFn
from harness.executors.work import WorkUnit, plan_units, run_unit
from harness.factory import Factory
from harness.plan import Job


@dataclass
class LocalExecutor:
    name: str = "local"
    split_heads: bool = False

    def units(self, jobs: Sequence[Job]) -> list[WorkUnit]:
        """Runs of neighbouring jobs, in plan order: exactly the loop this runner always had."""
        return plan_units(jobs, self.split_heads, consecutive=True)

    def run(self, factory: Factory, units: Sequence[WorkUnit], write: WriteFn, on_start: StartFn | None = None) -> None:
        for unit in units:
            if unit.kind == "group":  # an extract unit only matters where units run in parallel
                for result in run_unit(factory, unit, on_start):
                    write(result)

    def describe(self, units: Sequence[WorkUnit]) -> list[TaskInfo]:
        return [TaskInfo(u.uid, u.label, u.after, {"in-process": 1.0}) for u in units]
