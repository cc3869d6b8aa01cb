"""``harness cache ls|verify|clear``: the content-addressed, checksummed token cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from harness.cli.context import console, settings
from harness.console import styled

app = typer.Typer(help="Inspect or clear the token cache.", no_args_is_help=True)


@app.command("ls")
def cache_ls() -> None:
    """Cached token sets: backbone, stimuli, layers, size."""
    from harness.cache import TokenCache

    cache = TokenCache(settings().cache_dir)
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


@app.command("verify")
def cache_verify(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Check every cached file against the size and checksum recorded when it was written; damaged
    entries are quarantined (re-extracted by the next run that needs them). Exit 1 if any was damaged."""
    from harness.cache import TokenCache

    results = TokenCache(settings().cache_dir).verify(key)
    for k, problem in results:
        if problem:
            console.print(styled("red", "damaged", f" {k}: {problem} (quarantined)"), highlight=False)
    bad = sum(p is not None for _, p in results)
    console.print(f"{len(results) - bad} entr{'y' if len(results) - bad == 1 else 'ies'} ok, {bad} damaged", highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command("clear")
def cache_clear(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Remove cached tokens (they are recomputed on the next run)."""
    from harness.cache import TokenCache

    n = TokenCache(settings().cache_dir).clear(key)
    console.print(f"removed {n} cache entr{'y' if n == 1 else 'ies'}")
