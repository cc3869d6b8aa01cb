"""``harness weights status``: which backbone entries have their pretrained weights here.

Uses each backbone's cheap ``unavailable_reason`` (no network is built, nothing is
hashed or downloaded), so it answers in seconds for the whole zoo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table

from harness.cli import _registry_path, _settings
from harness.console import console, styled
from harness.errors import HarnessError

weights_app = typer.Typer(help="Pretrained weights of the registered backbones.", no_args_is_help=True)

AVAILABLE, MISSING, RANDOM = "available", "missing", "random-init"


@dataclass(frozen=True)
class WeightStatus:
    entry: str
    plugin: str
    family: str
    status: str
    #: the one-line reason when missing; where the weights come from otherwise
    detail: str


def weight_status(factory) -> list[WeightStatus]:
    """One row per backbone entry; an entry whose plugin or arguments are broken counts as missing."""
    from harness.contracts import Backbone
    from harness.plan import unavailable

    rows: list[WeightStatus] = []
    for e in sorted(factory.registry.of_kind("backbone"), key=lambda x: x.name):
        reason = unavailable(factory, e, Backbone)
        if reason:
            status, detail = MISSING, reason
        elif e.random_init:
            status, detail = RANDOM, "random weights (control)"
        else:
            status, detail = AVAILABLE, str(e.meta.get("weights_from") or e.meta.get("hub_id") or "")
        rows.append(WeightStatus(e.name, e.plugin, str(e.meta.get("family", "")), status, detail))
    return rows


@weights_app.command("status")
def status_cmd(
    only: Annotated[str | None, typer.Option("--only", help="Show only available, missing or random-init.")] = None,
) -> None:
    """Every backbone entry: available, missing (with the reason) or random-init."""
    from harness.factory import Factory
    from harness.plugins import default_catalog
    from harness.registry import load_registry

    if only is not None and only not in (AVAILABLE, MISSING, RANDOM):
        raise HarnessError(f"--only must be one of {AVAILABLE}, {MISSING}, {RANDOM}, not {only!r}")
    settings = _settings()
    catalog = default_catalog()
    reg = load_registry(catalog, _registry_path(settings), validate=False)
    rows = weight_status(Factory(catalog=catalog, registry=reg, settings=settings))
    shown = [r for r in rows if only in (None, r.status)]
    t = Table(title="backbone weights")
    for col in ("entry", "plugin", "family", "status", "source"):
        t.add_column(col)
    style = {AVAILABLE: "green", MISSING: "red", RANDOM: "yellow"}
    for r in shown:
        t.add_row(r.entry, r.plugin, r.family, styled(style[r.status], r.status),
                  r.detail if r.status != MISSING else "see below")
    console.print(t)
    for r in shown:
        if r.status == MISSING:
            console.print(f"{r.entry}: {r.detail}", soft_wrap=True, highlight=False, markup=False)
    counts = {s: sum(r.status == s for r in rows) for s in (AVAILABLE, MISSING, RANDOM)}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
