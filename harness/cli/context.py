"""What every command shares: the global options, the consoles, settings and a ready factory.

The root callback (:mod:`harness.cli`) stores the global options here once per
invocation; commands — the core's and those plugins add through the ``harness_cli``
hook — read them through :func:`settings` and :func:`open_factory` rather than the
environment, so ``--home`` or ``--db`` reach every hook as a :class:`~harness.settings.Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from harness.console import console, err_console  # noqa: F401  (re-exported: every command prints through these)

if TYPE_CHECKING:
    import pandas as pd

    from harness.factory import Factory
    from harness.settings import Settings
    from harness.store import Store

@dataclass
class Options:
    """The global options of one invocation (``harness --quiet --home … COMMAND``)."""

    quiet: bool = False
    verbose: bool = False
    home: Path | None = None
    data_root: Path | None = None
    db: Path | None = None
    registry: Path | None = None


options = Options()


def settings() -> Settings:
    """Flags beat environment, which beats the config file (:func:`harness.settings.load_settings`)."""
    from harness.settings import load_settings

    o = options
    return load_settings().with_overrides(home=o.home, data_root=o.data_root, db=o.db, registry=o.registry)


def open_factory(**kw: Any) -> Factory:
    """:meth:`Factory.open` on this invocation's settings (keyword arguments pass through)."""
    from harness.factory import Factory

    return Factory.open(settings(), **kw)


def store() -> Store:
    """This invocation's leaderboard database, for reading (a run's ``Factory.store()`` adds plugins' SQL when
    it migrates; reading needs no plugin loaded)."""
    from harness.store import Store

    return Store(settings().db)


def split(values: list[str] | None) -> list[str] | None:
    """Repeated and comma-separated option values as one list (``-b a,b -b c``); None when none given."""
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def show(df: pd.DataFrame, title: str, limit: int = 200) -> None:
    """A DataFrame as a table on stdout, floats to four significant digits."""
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c))
    for row in df.head(limit).itertuples(index=False):
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(t)
    if len(df) > limit:
        console.print(f"… {len(df) - limit} more rows (use `harness sql` to export)")
