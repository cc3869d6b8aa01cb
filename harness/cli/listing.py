"""``harness list``: installed plugins (and what they lack) and the registry entries that use them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from harness.cli.context import console, err_console, open_factory
from harness.console import styled
from harness.errors import HarnessError

app = typer.Typer()


@app.command("list")
def list_cmd(kind: Annotated[str | None, typer.Option("--kind", "-k", help="backbone, head, metric or dataset")] = None) -> None:
    """Installed plugins and the registry entries that use them."""
    from harness.specs import KINDS

    if kind is not None and kind not in KINDS:
        raise HarnessError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    f = open_factory(validate=False)
    catalog, reg = f.catalog, f.registry
    t = Table(title="plugins")
    for col in ("kind", "plugin", "version", "consumes → produces", "status", "summary"):
        t.add_column(col)
    for spec in catalog.specs(kind):  # type: ignore[arg-type]
        status = f"needs harness[{spec.extra}]" if spec.missing_requirements() else "ok"
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
