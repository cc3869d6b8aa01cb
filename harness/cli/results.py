"""``harness leaderboard`` and ``harness sql``: reading results, also while a run is writing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.context import options, show, store
from harness.errors import HarnessError

app = typer.Typer()

#: columns `harness leaderboard` and `harness run` show by default (all with --wide)
ESSENTIAL = ("rank", "dataset", "roi", "metric", "backbone", "head", "random_init", "raw", "ci_low", "ci_high",
             "normalised", "ceiling", "n_subjects", "task", "base", "delta_raw", "slope", "r2")


@app.command()
def leaderboard(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    roi: Annotated[str | None, typer.Option("--roi", "-r")] = None,
    metric: Annotated[str | None, typer.Option("--metric", "-m")] = None,
    view: Annotated[str, typer.Option(help="Any view defined in leaderboards/*.sql or by a plugin")] = "leaderboard",
    wide: Annotated[bool, typer.Option("--wide", help="Every column of the view (default: the essential ones).")] = False,
) -> None:
    """Print a ranked leaderboard (works while a run is writing)."""
    db = store()
    views = set(db.query("SELECT view_name FROM duckdb_views() WHERE NOT internal").view_name)
    if view not in views:
        raise HarnessError(f"unknown view {view!r}; known: {', '.join(sorted(views))}")
    where, params = [], []
    cols = set(db.query(f"SELECT * FROM {view} LIMIT 0").columns)
    for col, val in (("dataset", dataset), ("roi", roi), ("metric", metric)):
        if val is not None:
            if col not in cols:
                raise HarnessError(f"view {view!r} has no column {col!r}")
            where.append(f"{col} = ?")
            params.append(val)
    order = " ORDER BY dataset, roi, metric, rank" if {"rank", "dataset", "roi", "metric"} <= cols else ""
    sql = f"SELECT * FROM {view}" + (" WHERE " + " AND ".join(where) if where else "") + order
    df = db.query(sql, params)
    if not wide:
        keep = [c for c in ESSENTIAL if c in df.columns]
        df = df[keep] if len(keep) >= 4 else df
    show(df, view)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A read-only SELECT/WITH query.")],
    csv: Annotated[Path | None, typer.Option(help="Write the result as CSV here.")] = None,
    parquet: Annotated[Path | None, typer.Option(help="Write the result as Parquet here.")] = None,
) -> None:
    """Run a read-only query on the leaderboard database."""
    df = store().query(query)
    if csv:
        df.to_csv(csv, index=False)
    if parquet:
        df.to_parquet(parquet, index=False)
    if not (csv or parquet) or not options.quiet:
        show(df, "result")
