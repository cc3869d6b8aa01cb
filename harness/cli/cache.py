"""``harness cache ls|clear``: the content-addressed token cache."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from harness.cli.context import console, settings

app = typer.Typer(help="Inspect or clear the token cache.", no_args_is_help=True)


@app.command("ls")
def cache_ls() -> None:
    """Cached token sets: backbone, stimuli, layers, size."""
    from harness.cache import TokenCache

    cache = TokenCache(settings().cache_dir)
    t = Table(title=f"token cache {cache.root}")
    for col in ("key", "backbone", "random_init", "n", "layers", "precision", "MB"):
        t.add_column(col)
    for s in cache.ls():
        t.add_row(s.key[:12], str(s.meta.get("backbone")), str(s.meta.get("random_init")), str(s.n), str(len(s.layers)),
                  str(s.meta.get("precision")), f"{cache.size_bytes(s) / 1e6:.1f}")
    console.print(t)


@app.command("clear")
def cache_clear(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Remove cached tokens (they are recomputed on the next run)."""
    from harness.cache import TokenCache

    n = TokenCache(settings().cache_dir).clear(key)
    console.print(f"removed {n} cache entr{'y' if n == 1 else 'ies'}")
