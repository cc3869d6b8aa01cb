"""``harness leaderboard`` and ``harness sql``: reading results, also while a run is writing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.context import console, options, store

app = typer.Typer()

#: columns `harness leaderboard` and `harness run` show by default (all with --wide)
ESSENTIAL = ("rank", "dataset", "roi", "metric", "backbone", "head", "random_init", "raw", "ci_low", "ci_high",
             "normalised", "ceiling", "n_subjects", "task", "base", "delta_raw", "slope", "r2")


@app.command()
def leaderboard(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
    roi: Annotated[str | None, typer.Option("--roi", "-r")] = None,
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="A metric's rows of the `leaderboard` view "
                                               "(secondary metrics too); default: each dataset's primary score.")] = None,
    view: Annotated[str | None, typer.Option(help="Any view defined in leaderboards/*.sql or by a plugin (default: "
                                             "`primary_scores`, or `leaderboard` with --metric).")] = None,
    top: Annotated[int, typer.Option(help="Models per dataset × ROI on the first screen (0: all).")] = 10,
    wide: Annotated[bool, typer.Option("--wide", help="Every column of the view (default: the essential ones).")] = False,
) -> None:
    """Top models per dataset × ROI by its primary score, random-init control beside (works while a run writes)."""
    from harness import board

    df = board.query_board(store(), view, top=top, wide=wide, filters={"dataset": dataset, "roi": roi, "metric": metric})
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
    df = store().query(query)
    if csv:
        df.to_csv(csv, index=False)
    if parquet:
        df.to_parquet(parquet, index=False)
    if not (csv or parquet) or not options.quiet:
        from harness import board

        board.render(df, "result", console)
