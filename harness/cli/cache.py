"""``harness cache ls|verify|clear``: the content-addressed, checksummed token cache and decoded-stimulus cache."""

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
    d = Table(title=f"decoded stimuli {cache.decoded.root} (uint8 pixels shared by backbones with one recipe)")
    for col in ("key", "stimuli", "n", "resize", "crop", "interpolation", "MB", "state"):
        d.add_column(col)
    for key, e, problem in cache.decoded.scan():
        if e is None:
            d.add_row(key[:12], "", "", "", "", "", "", f"damaged: {problem}")
            continue
        m = e.meta
        d.add_row(key[:12], str(m.get("stimuli", ""))[:12], str(m.get("n")), str(m.get("resize")), str(m.get("crop")),
                  str(m.get("interpolation")), f"{cache.decoded.size_bytes(e) / 1e6:.1f}",
                  f"damaged: {problem}" if problem else "ok")
    console.print(d)


def _report(what: str, results: list[tuple[str, str | None]]) -> int:
    for k, problem in results:
        if problem:
            console.print(styled("red", "damaged", f" {what}{k}: {problem} (quarantined)"), highlight=False)
    bad = sum(p is not None for _, p in results)
    console.print(f"{what}{len(results) - bad} entr{'y' if len(results) - bad == 1 else 'ies'} ok, {bad} damaged",
                  highlight=False)
    return bad


@app.command("verify")
def cache_verify(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Check every cached file against the size and checksum recorded when it was written; damaged
    entries are quarantined (re-extracted by the next run that needs them). Exit 1 if any was damaged."""
    from harness.cache import TokenCache

    cache = TokenCache(settings().cache_dir)
    bad = _report("", cache.verify(key)) + _report("decoded stimuli: ", cache.decoded.verify(key))
    if bad:
        raise typer.Exit(1)


@app.command("clear")
def cache_clear(key: Annotated[str | None, typer.Argument(help="Key prefix; all entries when omitted.")] = None) -> None:
    """Remove cached tokens and decoded stimuli (they are recomputed on the next run)."""
    from harness.cache import TokenCache

    cache = TokenCache(settings().cache_dir)
    n, d = cache.clear(key), cache.decoded.clear(key)
    console.print(f"removed {n} cache entr{'y' if n == 1 else 'ies'} and {d} decoded stimulus set{'' if d == 1 else 's'}")
