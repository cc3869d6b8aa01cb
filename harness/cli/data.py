"""``harness data``: what brain data is present where, downloading the public sets, and their noise ceilings.

Which files a dataset needs and where they are published is the dataset plugin's
business (``Dataset.fetch_plan``); this module only drives :mod:`harness.kit.fetch`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.context import console, err_console, open_factory, options
from harness.console import styled, text_column
from harness.errors import HarnessError

app = typer.Typer(help="Brain data: status, fetch (public sets), noise ceilings.", no_args_is_help=True)


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _describe_fetch(ds: Any) -> str:
    try:
        plan = ds.fetch_plan()
    except HarnessError as exc:
        return f"no ({exc})"
    if plan is None or not plan.files:
        return "no"
    terms = ", terms to accept" if plan.terms else ""
    return f"{len(plan.files)} files, {_mb(plan.total_bytes)}{terms}"


@app.command("status")
def status_cmd() -> None:
    """Every registered dataset: present or why not, the folder it reads, and whether it can be fetched."""
    f = open_factory()
    t = Table(title=f"datasets (HARNESS_DATA_ROOT: {f.settings.data_root or 'not set'})")
    for col in ("entry", "plugin", "status", "folder", "fetch"):
        t.add_column(col, overflow="fold")
    for e in sorted(f.registry.of_kind("dataset"), key=lambda x: x.name):
        folder, fetch = "", ""
        try:
            ds = f.build(e)
            reason = ds.unavailable_reason()
            try:
                folder = str(getattr(ds, "root", "") or "")
            except HarnessError:
                folder = ""
            fetch = _describe_fetch(ds)
        except HarnessError as exc:
            reason = str(exc)
        reason = None if reason is None else reason.split(" (expected")[0]
        t.add_row(e.name, e.plugin, styled("green", "present") if reason is None else styled("yellow", "missing", f": {reason}"),
                  folder, fetch)
    console.print(t)


@app.command("fetch")
def fetch_cmd(
    dataset: Annotated[str, typer.Argument(help="Registry entry of the dataset (see `harness data status`).")],
    accept_terms: Annotated[bool, typer.Option("--accept-terms", help="Confirm the dataset's terms of use non-interactively.")] = False,
    mirror: Annotated[str | None, typer.Option(help="Fetch the same paths from this origin instead (a local mirror).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be downloaded.")] = False,
) -> None:
    """Download a public dataset into the folder its entry reads; checksummed, resumable (rerun after an interruption)."""
    from harness.kit.fetch import fetch

    f = open_factory()
    ds = f.dataset(dataset)
    plan = ds.fetch_plan()
    if plan is None:
        raise HarnessError(f"dataset {dataset!r} ({ds.spec.id}) has no public download; put its files in place by hand")
    if not plan.files:
        raise HarnessError(f"dataset {dataset!r}: {plan.note}")
    console.print(f"{dataset}: {len(plan.files)} files ({_mb(plan.total_bytes)}) → {plan.folder}")
    if plan.note and not options.quiet:
        console.print(plan.note)
    if dry_run:
        for rf in plan.files:
            console.print(f"  {rf.dest}  ←  {rf.url}")
        return
    if plan.terms and not accept_terms:
        if not sys.stdin.isatty():
            raise HarnessError(f"dataset {dataset!r} has terms of use: {plan.terms} (pass --accept-terms to confirm)")
        if not typer.confirm(plan.terms):
            raise HarnessError("terms not accepted; nothing downloaded")
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    with Progress(text_column("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err_console, disable=options.quiet, transient=True) as prog:
        tasks: dict[str, Any] = {}

        def on_progress(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = prog.add_task(name, total=total)
            prog.update(tasks[name], completed=done)

        counts = fetch(plan, mirror=mirror, progress=on_progress)
    console.print(f"{dataset}: {counts['downloaded']} downloaded, {counts['resumed']} resumed, "
                  f"{counts['present']} already present (checksums verified) → {plan.folder}")


@app.command("ceiling")
def ceiling_cmd(
    dataset: Annotated[str, typer.Argument(help="Registry entry of the dataset.")],
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="One subject (job unit); default all.")] = None,
) -> None:
    """Noise ceilings per ROI: RDMs (lower/upper, squared Spearman) or voxels (median r-scale ceiling and its square)."""
    import numpy as np

    from harness.contracts import RDMTargets
    from harness.kit.ceilings import noise_ceiling_rdm
    from harness.kit.scoring import upper

    f = open_factory()
    ds = f.dataset(dataset)
    reason = ds.unavailable_reason()
    if reason:
        raise HarnessError(f"dataset {dataset!r}: {reason}")
    t = Table(title=f"noise ceilings: {dataset}")
    for col in ("subject", "roi", "n", "lower R²", "upper R²", "median ceiling r", "median ceiling r²"):
        t.add_column(col)
    for subj in [subject] if subject else ds.subjects():
        targets = ds.targets(subj)
        if isinstance(targets, RDMTargets):
            for roi, r in targets.rdms.items():
                if len(r) < 2:
                    t.add_row(subj, roi, str(len(r)), "n/a (1 subject)", "", "", "")
                    continue
                lo, hi = noise_ceiling_rdm(upper(r))
                t.add_row(subj, roi, str(len(r)), f"{lo:.4f}", f"{hi:.4f}", "", "")
            continue
        nc = targets.noise_ceiling_r
        rois = np.asarray(targets.voxels["roi"]).astype(str)
        for roi in ["all", *dict.fromkeys(rois)]:
            m = np.ones(len(rois), bool) if roi == "all" else rois == roi
            if nc is None:
                t.add_row(subj, roi, str(int(m.sum())), "", "", "none (no repeats)", "")
            else:
                t.add_row(subj, roi, str(int(m.sum())), "", "", f"{np.nanmedian(nc[m]):.4f}", f"{np.nanmedian(nc[m] ** 2):.4f}")
    console.print(t)
