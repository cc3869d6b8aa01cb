"""``harness report``: the leaderboard as one self-contained HTML page of paper figures (or PNG files).

Reads the database read-only (works while a run is writing); brain data the database does not hold
(subjects' RDMs, voxel coordinates, an example stimulus) comes through the registry's dataset plugins,
unless ``--db-only``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli import _factory, _split, app, console
from harness.errors import HarnessError


@app.command()
def report(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (--format html) or folder (--format png).")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeat or comma-separate).")] = None,
    backbone: Annotated[list[str] | None, typer.Option("--backbone", "-b", help="Only these backbones.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html (one self-contained file) or png (one file per plot).")] = "html",
    db_only: Annotated[bool, typer.Option("--db-only", help="Never open datasets or stored model RDMs: RDM and brain maps are omitted.")] = False,
) -> None:
    """Figures of the results in one HTML file: leaderboard, hierarchy, layer choice, stage weights, fine-tune deltas, RDMs, brain maps."""
    try:
        import matplotlib
    except ImportError:
        raise HarnessError("harness report needs matplotlib: pip install 'harness[report]'") from None
    matplotlib.use("Agg")
    from harness.report.build import build_report, write_pngs
    from harness.report.html import render
    from harness.report.outside import Outside
    from harness.runner import argv_string
    from harness.store import Store

    if fmt not in ("html", "png"):
        raise HarnessError(f"--format must be html or png, not {fmt!r}")
    f = _factory()
    rep = build_report(Store(f.settings.db), argv_string(), _split(dataset) or (), _split(backbone) or (),
                       None if db_only else Outside(f))
    if fmt == "png":
        folder = out or Path("report_figures")
        paths = write_pngs(rep, folder)
        console.print(f"wrote {len(paths)} figure files to {folder}")
        return
    path = out or Path("report.html")
    path.write_text(render(rep), encoding="utf-8")
    shown = sum(bool(s.plots) for s in rep.sections)
    console.print(f"wrote {path} ({shown} of {len(rep.sections)} figures; omitted ones say why)")
