"""The ``harness`` command line: list, plan, run, leaderboard, sql, cache.

Every user error prints one line and exits with a meaningful code:
0 ok, 1 some jobs failed, 2 bad input/config, 3 database problem, 4 database busy, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from harness.console import console, err_console, styled, text_column
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.factory import Factory
    from harness.plan import Plan
    from harness.executors.base import Executor
    from harness.runner import RunSummary
    from harness.store import Store

app = typer.Typer(help="Which deep net, read out how, best predicts the visual brain?", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
cache_app = typer.Typer(help="Inspect or clear the token cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@dataclass
class State:
    quiet: bool = False
    verbose: bool = False
    home: Path | None = None
    data_root: Path | None = None
    db: Path | None = None
    registry: Path | None = None


state = State()


@app.callback()
def _global(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and final results.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging (tracebacks of failed jobs).")] = False,
    home: Annotated[Path | None, typer.Option(help="Cache/derived-weights folder [env HARNESS_HOME].")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Brain data root [env HARNESS_DATA_ROOT].")] = None,
    db: Annotated[Path | None, typer.Option(help="Leaderboard database file [env HARNESS_DB].")] = None,
    registry: Annotated[Path | None, typer.Option(help="registry.yaml to use [env HARNESS_REGISTRY].")] = None,
) -> None:
    state.quiet, state.verbose = quiet, verbose
    state.home, state.data_root, state.db, state.registry = home, data_root, db, registry
    # plugins read settings through the environment too (e.g. derived backbones under HARNESS_HOME)
    for var, value in (("HARNESS_HOME", home), ("HARNESS_DATA_ROOT", data_root), ("HARNESS_DB", db),
                       ("HARNESS_REGISTRY", registry)):
        if value is not None:
            os.environ[var] = str(Path(value).expanduser().resolve())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _settings():
    from harness.settings import load_settings

    s = load_settings().with_overrides(home=state.home, data_root=state.data_root, db=state.db, registry=state.registry)
    return s


def _registry_path(settings) -> Path | None:
    if settings.registry is not None:
        return settings.registry
    local = Path.cwd() / "registry.yaml"
    if local.is_file():
        return local
    bundled = Path(__file__).resolve().parent.parent / "registry.yaml"
    return bundled if bundled.is_file() else None


def _factory(device: str = "cpu", random_init: bool = False, **extraction):
    from harness.factory import ExtractionOptions, Factory
    from harness.plugins import default_catalog
    from harness.registry import Registry, load_registry

    settings = _settings()
    catalog = default_catalog()
    reg = load_registry(catalog, _registry_path(settings))
    if random_init:
        entries = {n: (e.model_copy(update={"random_init": True}) if e.kind == "backbone" else e) for n, e in reg.entries.items()}
        reg = Registry(entries=entries)
    opts = ExtractionOptions(**{k: v for k, v in extraction.items() if v is not None})
    return Factory(catalog=catalog, registry=reg, settings=settings, device=device, extraction=opts)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


@app.command("list")
def list_cmd(kind: Annotated[str | None, typer.Option("--kind", "-k", help="backbone, head, metric or dataset")] = None) -> None:
    """Installed plugins and the registry entries that use them."""
    from harness.plugins import default_catalog, missing_requirements
    from harness.registry import load_registry
    from harness.specs import KINDS

    if kind is not None and kind not in KINDS:
        raise HarnessError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    catalog = default_catalog()
    reg = load_registry(catalog, _registry_path(_settings()), validate=False)
    t = Table(title="plugins")
    for col in ("kind", "plugin", "version", "consumes → produces", "status", "summary"):
        t.add_column(col)
    for spec in catalog.specs(kind):  # type: ignore[arg-type]
        miss = missing_requirements(spec)
        status = f"needs harness[{spec.extra}]" if miss else "ok"
        t.add_row(spec.kind, spec.id, spec.version, f"{','.join(sorted(spec.consumes))} → {','.join(sorted(spec.produces))}",
                  status, spec.summary)
    console.print(t)
    for name, err in catalog.broken.items():
        err_console.print(styled("red", f"plugin {name!r} failed to load:", f" {err}"), highlight=False)
    e = Table(title="registry entries")
    for col in ("kind", "name", "plugin", "random_init", "source"):
        e.add_column(col)
    for entry in sorted(reg.entries.values(), key=lambda x: (x.kind, x.name)):
        if kind in (None, entry.kind):
            e.add_row(entry.kind, entry.name, entry.plugin, "yes" if entry.random_init else "", entry.source)
    console.print(e)


def _plan(all_: bool, backbone, head, dataset, metric, factory, everything: bool = False):
    from harness.plan import make_plan

    if not (all_ or everything) and not (backbone or head or dataset):
        raise HarnessError("say what to run: --all, --everything, or a subset with -b/-H/-d")
    return make_plan(factory, backbones=_split(backbone), heads=_split(head), datasets=_split(dataset),
                     metrics=_split(metric), everything=everything)


Everything = Annotated[bool, typer.Option("--everything", help="Like --all, plus entries marked in_all: false "
                                          "(ablations, extra sessions, larger nets).")]


Sel = Annotated[list[str] | None, typer.Option()]


@app.command()
def plan(
    all_: Annotated[bool, typer.Option("--all", help="Every registered backbone × head × dataset.")] = False,
    backbone: Annotated[list[str] | None, typer.Option("-b", "--backbone")] = None,
    head: Annotated[list[str] | None, typer.Option("-H", "--head")] = None,
    dataset: Annotated[list[str] | None, typer.Option("-d", "--dataset")] = None,
    metric: Annotated[list[str] | None, typer.Option("-m", "--metric")] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Build every backbone with random weights.")] = False,
    everything: Everything = False,
) -> None:
    """What would run, what is already done, and what is skipped (with the reason)."""
    from harness.store import Store

    f = _factory(random_init=random_init)
    p = _plan(all_, backbone, head, dataset, metric, f, everything)
    store = Store(f.settings.db)
    done = store.finished_jobs() if f.settings.db.exists() else set()
    t = Table(title=f"plan: {len(p.jobs)} jobs ({sum(j.job_id in done for j in p.jobs)} done)")
    for col in ("backbone", "head", "dataset", "subject", "metrics", "status"):
        t.add_column(col)
    for j in p.jobs:
        t.add_row(j.backbone.name, j.head.name, j.dataset.name, j.subject, ",".join(m.name for m in j.metrics),
                  "done" if j.job_id in done else "to run")
    console.print(t)
    _print_skips(p)


def _print_skips(p) -> None:
    if p.skipped:
        s = Table(title="skipped")
        s.add_column("what")
        s.add_column("reason")
        for sk in p.skipped:
            s.add_row(sk.what, sk.reason)
        console.print(s)


@app.command()
def run(
    all_: Annotated[bool, typer.Option("--all", help="Every registered backbone × head × dataset.")] = False,
    backbone: Annotated[list[str] | None, typer.Option("-b", "--backbone")] = None,
    head: Annotated[list[str] | None, typer.Option("-H", "--head")] = None,
    dataset: Annotated[list[str] | None, typer.Option("-d", "--dataset")] = None,
    metric: Annotated[list[str] | None, typer.Option("-m", "--metric")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    random_init: Annotated[bool, typer.Option("--random-init", help="Build every backbone with random weights.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Extraction batch size.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32 or bf16 (autocast) extraction; auto: bf16 on CUDA, and on CPU for families measured accurate (r ≥ 0.999) and faster.")] = None,
    finetune: Annotated[list[str] | None, typer.Option("--finetune", help="Cross base backbones (-b, default all) with their derived backbones fine-tuned on TASK; prints finetune_deltas.")] = None,
    everything: Everything = False,
    executor: Annotated[str | None, typer.Option(help="local (this process) or ray [env HARNESS_EXECUTOR].")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster: auto or ray://host:port; unset starts a local one [env HARNESS_RAY_ADDRESS].")] = None,
    cpus_per_job: Annotated[float | None, typer.Option(help="CPUs each Ray task requests (default 1) [env HARNESS_CPUS_PER_JOB].")] = None,
    gpus_per_job: Annotated[float | None, typer.Option(help="GPUs each Ray task requests (default 0; fractions share a card) [env HARNESS_GPUS_PER_JOB].")] = None,
    split_heads: Annotated[bool | None, typer.Option("--split-heads/--no-split-heads", help="One task per head after one extraction task per dataset × backbone [env HARNESS_SPLIT_HEADS].")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the task graph with each task's resources; run nothing.")] = False,
) -> None:
    """Cross backbones × heads × datasets × subjects; finished jobs are skipped, failed ones retried."""
    from harness.executors import options
    from harness.store import Store

    eo = options.resolve(_settings(), executor, address, cpus_per_job, gpus_per_job, split_heads,
                         batch_size_given=batch_size is not None)
    dev = options.device_for(eo, device)
    f = _factory(device=dev, random_init=random_init, batch_size=batch_size, precision=precision)
    ft_skips: list = []
    if finetune:  # each base backbone followed by its derived (fine-tuned) backbones: see harness/cli_finetune.py
        from harness.cli_finetune import select_finetuned

        backbone, ft_skips = select_finetuned(f, _split(finetune) or [], _split(backbone))
    store = Store(f.settings.db)
    with store.run_lock():  # before planning: a second run on the same database stops at once
        p = _plan(all_, backbone, head, dataset, metric, f, everything)
        p.skipped.extend(ft_skips)
        if not state.quiet or not p.jobs:
            _print_skips(p)
        ex = options.make_executor(eo)
        if dry_run:  # see harness/cli_executor.py
            from harness.cli_executor import show_task_graph

            show_task_graph(ex, p, store, console)
            return
        p.require_jobs()
        summary = _run_plan(p, f, store, dev, ex)
    if not state.quiet:
        console.print(f"run {summary.run_id}: {summary.done} done, {summary.cached} already done, "
                      f"{len(summary.failed)} failed → {f.settings.db}", highlight=False)
        for label, err in summary.failed:
            console.print(styled("red", "failed", f" {label}: {err}"), highlight=False)
        if summary.done or summary.cached:
            from harness import board

            board.render_first_screen(board.query_board(store), console)
            if finetune:
                from harness.cli_finetune import show_deltas

                show_deltas(f.settings.db, _split(finetune) or [])
    if summary.failed:
        raise typer.Exit(1)


def _run_plan(p: Plan, f: Factory, store: Store, dev: str, ex: Executor) -> RunSummary:
    """Run the plan with progress bars on stderr; the summary comes back for printing."""
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from harness.runner import Runner, argv_string

    with Progress(text_column("{task.description}"), BarColumn(), text_column("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err_console, disable=state.quiet, transient=False) as prog:
        overall = prog.add_task(f"jobs on {dev}" + (f" via {ex.name}" if ex.name != "local" else ""), total=len(p.jobs))
        tasks: dict[str, int] = {}

        def on_extract(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = prog.add_task(label, total=total)
            prog.update(tasks[label], completed=done)

        def on_job(label: str, done: int, total: int) -> None:
            if done:
                prog.advance(overall)
            else:
                prog.update(overall, description=f"jobs on {dev}: {label}")

        f.progress = on_extract
        return Runner(f, store, progress=on_job, executor=ex).run(p, argv=argv_string())


@app.command()
def leaderboard(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    roi: Annotated[str | None, typer.Option("--roi", "-r")] = None,
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="A metric's rows of the `leaderboard` view "
                                               "(secondary metrics too); default: each dataset's primary score.")] = None,
    view: Annotated[str | None, typer.Option(help="Any view defined in leaderboards/*.sql (default: `primary_scores`, "
                                             "or `leaderboard` with --metric).")] = None,
    top: Annotated[int, typer.Option(help="Models per dataset × ROI on the first screen (0: all).")] = 10,
    wide: Annotated[bool, typer.Option("--wide", help="Every column of the view (default: the essential ones).")] = False,
) -> None:
    """Top models per dataset × ROI by its primary score, random-init control beside (works while a run writes)."""
    from harness import board
    from harness.store import Store

    store = Store(_settings().db)
    df = board.query_board(store, view, top=top, wide=wide, filters={"dataset": dataset, "roi": roi, "metric": metric})
    name = board.resolve_view(view, metric)
    if name == board.FIRST_SCREEN and not wide:
        board.render_first_screen(df, console)
    else:
        board.render(df, name, console)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT/WITH query.")],
    csv: Annotated[Path | None, typer.Option(help="Write the result as CSV here.")] = None,
    parquet: Annotated[Path | None, typer.Option(help="Write the result as Parquet here.")] = None,
) -> None:
    """Run a read-only query on the leaderboard database."""
    from harness.store import Store

    df = Store(_settings().db).query(query)
    if csv:
        df.to_csv(csv, index=False)
    if parquet:
        df.to_parquet(parquet, index=False)
    if not (csv or parquet) or not state.quiet:
        from harness import board

        board.render(df, "result", console)


@cache_app.command("ls")
def cache_ls() -> None:
    """Cached token sets: backbone, stimuli, layers, size."""
    from harness.cache import TokenCache

    cache = TokenCache(_settings().cache_dir)
    t = Table(title=f"token cache {cache.root}")
    for col in ("key", "backbone", "random_init", "n", "layers", "precision", "MB", "state"):
        t.add_column(col)
    for key, s, problem in cache.scan():
        if s is None:
            t.add_row(key[:12], "", "", "", "", "", "", f"damaged: {problem}")
            continue
        t.add_row(s.key[:12], str(s.meta.get("backbone")), str(s.meta.get("random_init")), str(s.meta.get("n")),
                  str(len(s.meta.get("layers") or ())), str(s.meta.get("precision")), f"{cache.size_bytes(s) / 1e6:.1f}",
                  f"damaged: {problem}" if problem else "ok")
    console.print(t)


@cache_app.command("verify")
def cache_verify(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Check every cached file against the size and checksum recorded when it was written; damaged
    entries are quarantined (re-extracted by the next run that needs them). Exit 1 if any was damaged."""
    from harness.cache import TokenCache

    results = TokenCache(_settings().cache_dir).verify(key)
    for k, problem in results:
        if problem:
            console.print(styled("red", "damaged", f" {k}: {problem} (quarantined)"), highlight=False)
    bad = sum(p is not None for _, p in results)
    console.print(f"{len(results) - bad} entr{'y' if len(results) - bad == 1 else 'ies'} ok, {bad} damaged", highlight=False)
    if bad:
        raise typer.Exit(1)


@cache_app.command("clear")
def cache_clear(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Remove cached tokens (they are recomputed on the next run)."""
    from harness.cache import TokenCache

    n = TokenCache(_settings().cache_dir).clear(key)
    console.print(f"removed {n} cache entr{'y' if n == 1 else 'ies'}")


# Sub-commands that live in their own modules register here (one import line each).
import harness.cli_data  # noqa: E402  (harness data status|fetch|ceiling)
import harness.cli_finetune  # noqa: E402,F401  (harness finetune)
import harness.cli_report  # noqa: E402,F401  (harness report)
import harness.cli_export  # noqa: E402,F401  (harness export)
from harness.cli_weights import weights_app  # noqa: E402  (harness weights status)

app.add_typer(weights_app, name="weights")
from harness.cli_analyze import analyze_app  # noqa: E402  (harness analyze clusters|channels)

app.add_typer(analyze_app, name="analyze")


def main() -> None:
    try:
        app()
    except HarnessError as exc:
        err_console.print(styled("red", "error:", f" {exc}"), soft_wrap=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:  # typer turns Ctrl-C into Exit(130) before it reaches us
        if exc.code == 130:
            _interrupted()
        raise


def _interrupted() -> None:
    err_console.print("interrupted: finished jobs are saved; rerun to resume", highlight=False)
    sys.exit(130)


if __name__ == "__main__":
    main()
