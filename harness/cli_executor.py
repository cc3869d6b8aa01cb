"""``harness run --dry-run``: the tasks an executor would submit for the jobs still to do, and their resources."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.executors.base import Executor
from harness.plan import Plan
from harness.store import Store


def show_task_graph(ex: Executor, plan: Plan, store: Store, console: Console) -> None:
    done = store.finished_jobs() if store.path.exists() else set()
    todo = [j for j in plan.jobs if j.job_id not in done]
    units = ex.units(todo)
    infos = ex.describe(units)
    t = Table(title=f"task graph ({ex.name}): {len(infos)} tasks for {len(todo)} jobs "
                    f"({len(plan.jobs) - len(todo)} already done)")
    for col in ("task", "after", "jobs", "what", "resources"):
        t.add_column(col)
    for u, info in zip(units, infos, strict=True):
        res = ", ".join(f"{k}={v:g}" for k, v in info.resources.items())
        t.add_row(info.uid, info.after or "", str(len(u.jobs)), info.label, res)
    console.print(t)
