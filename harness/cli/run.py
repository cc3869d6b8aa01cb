"""``harness plan`` and ``harness run``: the jobs a selection makes, and running them with progress bars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from harness.cli.context import console, err_console, open_factory, options, split
from harness.console import styled, text_column
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.executors.base import Executor
    from harness.factory import Factory
    from harness.plan import Plan
    from harness.runner import RunSummary
    from harness.store import Store

app = typer.Typer()

All = Annotated[bool, typer.Option("--all", help="Every registered backbone × head × dataset.")]
Backbones = Annotated[list[str] | None, typer.Option("-b", "--backbone")]
Heads = Annotated[list[str] | None, typer.Option("-H", "--head")]
Datasets = Annotated[list[str] | None, typer.Option("-d", "--dataset")]
Metrics = Annotated[list[str] | None, typer.Option("-m", "--metric")]
RandomInit = Annotated[bool, typer.Option("--random-init", help="Build every backbone with random weights.")]
Everything = Annotated[bool, typer.Option("--everything", help="Like --all, plus entries marked in_all: false "
                                          "(ablations, extra sessions, larger nets).")]


def make_selected_plan(factory: Factory, all_: bool, backbone: list[str] | None, head: list[str] | None,
                       dataset: list[str] | None, metric: list[str] | None, everything: bool = False) -> Plan:
    """The plan of a ``-b/-H/-d/-m`` selection; refuses an empty selection rather than running everything."""
    from harness.plan import make_plan

    if not (all_ or everything) and not (backbone or head or dataset):
        raise HarnessError("say what to run: --all, --everything, or a subset with -b/-H/-d")
    return make_plan(factory, backbones=split(backbone), heads=split(head), datasets=split(dataset),
                     metrics=split(metric), everything=everything)


def print_skips(p: Plan) -> None:
    if p.skipped:
        s = Table(title="skipped")
        s.add_column("what")
        s.add_column("reason")
        for sk in p.skipped:
            s.add_row(sk.what, sk.reason)
        console.print(s)


@app.command()
def plan(all_: All = False, backbone: Backbones = None, head: Heads = None, dataset: Datasets = None,
         metric: Metrics = None, random_init: RandomInit = False, everything: Everything = False) -> None:
    """What would run, what is already done, and what is skipped (with the reason)."""
    f = open_factory(random_init=random_init)
    p = make_selected_plan(f, all_, backbone, head, dataset, metric, everything)
    done = f.store().finished_jobs()
    t = Table(title=f"plan: {len(p.jobs)} jobs ({sum(j.job_id in done for j in p.jobs)} done)")
    for col in ("backbone", "head", "dataset", "subject", "metrics", "status"):
        t.add_column(col)
    for j in p.jobs:
        t.add_row(j.backbone.name, j.head.name, j.dataset.name, j.subject, ",".join(m.name for m in j.metrics),
                  "done" if j.job_id in done else "to run")
    console.print(t)
    print_skips(p)


@app.command()
def run(
    all_: All = False,
    backbone: Backbones = None,
    head: Heads = None,
    dataset: Datasets = None,
    metric: Metrics = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda [env HARNESS_DEVICE, config `device`, else auto]")] = None,
    random_init: RandomInit = False,
    batch_size: Annotated[int | None, typer.Option(help="Extraction batch size.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32 or bf16 (autocast) extraction; auto: bf16 on CUDA, and on CPU for families measured accurate (r ≥ 0.999) and faster.")] = None,
    finetune: Annotated[list[str] | None, typer.Option("--finetune", help="Cross base backbones (-b, default all) with the backbones derived from them for TASK (registry `parent` + `meta.task`).")] = None,
    everything: Everything = False,
    executor: Annotated[str | None, typer.Option(help="local (this process), processes (a pool of this machine's cores ÷ --cpus-per-job "
                                                  "single-threaded workers) or ray [env HARNESS_EXECUTOR].")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster: auto or ray://host:port; unset starts a local one [env HARNESS_RAY_ADDRESS].")] = None,
    cpus_per_job: Annotated[float | None, typer.Option(help="CPUs each Ray task requests, or threads per worker with processes (default 1) [env HARNESS_CPUS_PER_JOB].")] = None,
    gpus_per_job: Annotated[float | None, typer.Option(help="GPUs each Ray task requests (default 0; fractions share a card) [env HARNESS_GPUS_PER_JOB].")] = None,
    split_heads: Annotated[bool | None, typer.Option("--split-heads/--no-split-heads", help="One task per head after one extraction task per dataset × backbone [env HARNESS_SPLIT_HEADS].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the task graph with each task's resources; run nothing.")] = False,
) -> None:
    """Cross backbones × heads × datasets × subjects; finished jobs are skipped, failed ones retried."""
    from harness.cli.context import settings
    from harness.executors import options as executor_options
    from harness.factory import ExtractionOptions
    from harness.plan import derived_selection

    s = settings()
    eo = executor_options.resolve(s, executor, address, cpus_per_job, gpus_per_job, split_heads,
                                  batch_size_given=batch_size is not None)
    dev = executor_options.device_for(eo, device or s.device)
    extraction = ExtractionOptions(**{k: v for k, v in (("batch_size", batch_size), ("precision", precision))
                                      if v is not None})
    f = open_factory(device=dev, random_init=random_init, extraction=extraction)
    ft_skips: list = []
    tasks = split(finetune) or []
    if tasks:  # each base backbone followed by its derived (fine-tuned) backbones
        backbone, ft_skips = derived_selection(f.registry, tasks, split(backbone))
    store = f.store()
    with store.run_lock():  # before planning: a second run on the same database stops at once
        p = make_selected_plan(f, all_, backbone, head, dataset, metric, everything)
        p.skipped.extend(ft_skips)
        if not options.quiet or not p.jobs:
            print_skips(p)
        ex = executor_options.make_executor(eo)
        if dry_run:
            from harness.cli.task_graph import show_task_graph

            show_task_graph(ex, p, store, console)
            return
        p.require_jobs()
        summary = _run_plan(p, f, store, dev, ex)
    if not options.quiet:
        console.print(f"run {summary.run_id}: {summary.done} done, {summary.cached} already done, "
                      f"{len(summary.failed)} failed → {f.settings.db}", highlight=False)
        for label, err in summary.failed:
            console.print(styled("red", "failed", f" {label}: {err}"), highlight=False)
        if summary.done or summary.cached:
            from harness import board

            board.render_first_screen(board.query_board(store), console)
            if tasks:
                console.print(f"derived − base per head, dataset and ROI: harness finetune --deltas --task {','.join(tasks)}")
    if summary.failed:
        raise typer.Exit(1)


def _run_plan(p: Plan, f: Factory, store: Store, dev: str, ex: Executor) -> RunSummary:
    """Run the plan with progress bars on stderr; the summary comes back for printing."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from harness.runner import Runner, argv_string

    with Progress(text_column("{task.description}"), BarColumn(), text_column("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, disable=options.quiet, transient=False) as prog:
        overall = prog.add_task(f"jobs on {dev}" + (f" via {ex.name}" if ex.name != "local" else ""), total=len(p.jobs))
        bars: dict[str, int] = {}

        def on_extract(label: str, done: int, total: int) -> None:
            if label not in bars:
                bars[label] = prog.add_task(label, total=total)
            prog.update(bars[label], completed=done)

        def on_job(label: str, done: int, total: int) -> None:
            if done:
                prog.advance(overall)
            else:
                prog.update(overall, description=f"jobs on {dev}: {label}")

        f.progress = on_extract
        return Runner(f, store, progress=on_job, executor=ex).run(p, argv=argv_string())
