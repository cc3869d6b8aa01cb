"""Leaderboard queries shared by ``harness leaderboard`` and ``harness.leaderboard()``, and their printing.

The default (no view, no metric) is the first screen: ``leaderboards/primary_scores.sql``, the top models per
dataset × ROI by the dataset's primary score with the random-init control beside each. ``metric=`` shows
that metric's rows of the ``leaderboard`` view; ``view=`` any view. Filters are column = value (a list
means IN), checked against the view's columns so a typo is an error naming the view and the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from harness.store import Store

#: the first screen's view (leaderboards/primary_scores.sql)
FIRST_SCREEN = "primary_scores"
#: what a metric or view filter shows when none is named
DEFAULT_VIEW = "leaderboard"
#: rows per dataset × ROI on the first screen (0 = all)
DEFAULT_TOP = 10

#: columns shown by default, in this order (everything with ``wide``)
ESSENTIAL = ("rank", "dataset", "roi", "metric", "backbone", "head", "random_init", "images", "raw", "ci_low", "ci_high",
             "normalised", "ceiling", "control", "control_raw", "control_normalised", "n_subjects", "in_process",
             "task", "base", "delta_raw", "slope", "r2")
#: columns holding entry names: never cut when printed
NAME_COLUMNS = ("backbone", "head", "control", "dataset", "metric", "base", "roi")


def resolve_view(view: str | None, metric: str | None) -> str:
    if view is not None:
        return view
    return DEFAULT_VIEW if metric is not None else FIRST_SCREEN


def query_board(store: Store, view: str | None = None, *, top: int = DEFAULT_TOP, wide: bool = False,
                filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Rows of ``view`` (default: the first screen, or ``leaderboard`` when a ``metric`` filter is given)."""
    filters = {k: v for k, v in (filters or {}).items() if v is not None}
    name = resolve_view(view, filters.get("metric"))
    views = set(store.query("SELECT view_name FROM duckdb_views() WHERE NOT internal")["view_name"])
    if name not in views:
        if name == FIRST_SCREEN:
            raise HarnessError(f"{store.path}: view {name!r} is not in this database yet (written by an older "
                               "harness); any `harness run` adds it (finished jobs are skipped: `harness run --all` "
                               "is instant)")
        raise HarnessError(f"unknown view {name!r}; known: {', '.join(sorted(views))}")
    cols = list(store.query(f"SELECT * FROM {name} LIMIT 0").columns)
    where, params = [], []
    for col, val in filters.items():
        if col not in cols:
            raise HarnessError(f"view {name!r} has no column {col!r}; columns: {', '.join(cols)}")
        if isinstance(val, (list, tuple, set, frozenset)):
            where.append(f'"{col}" IN ({", ".join("?" * len(val))})')
            params.extend(val)
        else:
            where.append(f'"{col}" = ?')
            params.append(val)
    if top and "rank" in cols and name == FIRST_SCREEN:
        where.append("rank <= ?")
        params.append(int(top))
    order_cols = [c for c in ("dataset", "roi", "metric", "rank") if c in cols]
    tie_break = [c for c in ("backbone", "head", "random_init") if c in cols]
    sql = f"SELECT * FROM {name}" + (" WHERE " + " AND ".join(where) if where else "")
    if order_cols:
        sql += " ORDER BY " + ", ".join(order_cols + tie_break)
    df = store.query(sql, params)
    if not wide:
        keep = [c for c in ESSENTIAL if c in df.columns]
        if len(keep) >= 4:
            df = df[keep]
    return df.reset_index(drop=True)


# ---------------------------------------------------------------------------- printing
def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return "" if v is None else str(v)


def _short_ids(df: pd.DataFrame, cols: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per name column, a short id for each distinct name (b1, b2 … for backbone) in order of appearance."""
    ids: dict[str, dict[str, str]] = {}
    prefixes: dict[str, str] = {}
    for col in cols:
        prefix = next(col[:n] for n in range(1, len(col) + 1) if col[:n] not in prefixes.values())
        prefixes[col] = prefix
        names = [str(v) for v in dict.fromkeys(df[col]) if v is not None and v == v]
        ids[col] = {n: f"{prefix}{i + 1}" for i, n in enumerate(names)}
    # a control is always a backbone: share the backbone ids so b3 means the same net in both columns
    if "control" in ids and "backbone" in ids:
        merged = dict(ids["backbone"])
        for n in ids["control"]:
            merged.setdefault(n, f"{prefixes['backbone']}{len(merged) + 1}")
        ids["backbone"] = ids["control"] = merged
    return ids


def render(df: pd.DataFrame, title: str, console: Console, limit: int = 200) -> None:
    """Print ``df`` as a table whose entry names are never cut: in full when the table fits the console,
    else as short ids with a legend below (a wrapped name could not be told apart or copied)."""
    escape = str  # the CLI consoles print with markup off (harness/console.py): nothing to escape
    from rich.table import Table

    shown = df.head(limit)
    cells = {c: [_cell(v) for v in shown[c]] for c in shown.columns}
    name_cols = [c for c in shown.columns if c in NAME_COLUMNS and len(shown)]
    # headers wrap at spaces and underscores; cells of name columns never do
    width = 1 + sum(3 + max([min(len(str(c)), 10), *map(len, cells[c])]) for c in shown.columns)
    legend: dict[str, dict[str, str]] = {}
    if width > console.width and name_cols:
        long_cols = [c for c in name_cols if max(map(len, cells[c])) > 6]
        legend = _short_ids(shown, long_cols)
        for c in long_cols:
            cells[c] = [legend[c].get(v, v) for v in cells[c]]
    t = Table(title=escape(title))
    for c in shown.columns:
        t.add_column(escape(str(c)), no_wrap=c in name_cols, overflow="fold")
    for i in range(len(shown)):
        t.add_row(*[escape(cells[c][i]) for c in shown.columns])
    console.print(t)
    printed: set[str] = set()
    for col, ids in legend.items():
        key = "backbone" if col == "control" else col
        if key in printed:
            continue
        printed.add(key)
        console.print(f"{escape(key)} ids:", highlight=False)
        for n, s in ids.items():  # one per line: a name is never broken across lines
            console.print(f"  {escape(s)} = {escape(n)}", highlight=False, no_wrap=True, overflow="ignore", crop=False)
    if len(df) > limit:
        console.print(f"… {len(df) - limit} more rows (use `harness sql` to export)")


def _num(v: Any, fmt: str) -> str:
    return "" if v is None or v != v else format(v, fmt)


def first_screen_table(part: pd.DataFrame) -> pd.DataFrame:
    """One dataset × metric of the first screen as printed: score with its CI, % of the noise ceiling, the
    ceiling, and the random-init control beside; flags only where set."""
    import pandas as pd

    out = pd.DataFrame({
        "roi": part["roi"], "rank": part["rank"], "backbone": part["backbone"], "head": part["head"],
        "score [95% CI]": [f"{_num(r, '.3f')} [{_num(lo, '.3f')}, {_num(hi, '.3f')}]"
                           for r, lo, hi in zip(part["raw"], part["ci_low"], part["ci_high"], strict=True)],
        "% ceiling": [_num(v, ".1f") for v in part["normalised"]],
        "ceiling": [_num(v, ".3f") for v in part["ceiling"]],
        "control": part["control"].fillna(""),
        "control score": [_num(v, ".3f") for v in part["control_raw"]],
        "control %": [_num(v, ".1f") for v in part["control_normalised"]],
    })
    flags = [", ".join(f for f, on in (("random-init", ri), ("in-process", ip)) if on)
             for ri, ip in zip(part["random_init"], part["in_process"], strict=True)]
    if any(flags):
        out["note"] = flags
    return out.reset_index(drop=True)


def render_first_screen(df: pd.DataFrame, console: Console) -> None:
    """The first screen: one table per dataset (its primary metric), ROIs in rows, names in full."""
    escape = str  # the CLI consoles print with markup off (harness/console.py): nothing to escape

    if df.empty:
        console.print("no primary scores yet: run something (`harness run --all`), or see `harness leaderboard --view "
                      "leaderboard`", highlight=False)
        return
    for (dataset, metric), part in df.groupby(["dataset", "metric"], sort=False):
        render(first_screen_table(part), f"{escape(str(dataset))}: {escape(str(metric))} (primary score; "
               "control = random-init twin)", console)
