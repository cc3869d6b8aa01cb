"""Read-only access to the leaderboard for the report, recording the SQL behind each figure.

Each figure asks its questions through a :class:`Reader`; the reader applies the user's
``--dataset``/``--backbone`` filters to any query whose result has those columns (by wrapping
the query, so figure SQL stays the plain view query) and logs the final SQL with its parameters
inlined, so a reader of the report can paste it into ``harness sql`` and get the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.store import Store


def _literal(value: Any) -> str:
    """A parameter written as a SQL literal (for the footer: copy-pasteable SQL)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def inline(sql: str, params: Sequence[Any]) -> str:
    """``?`` placeholders replaced by literals, in order."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError(f"{len(parts) - 1} placeholders for {len(params)} parameters")
    out = parts[0]
    for p, rest in zip(params, parts[1:], strict=True):
        out += _literal(p) + rest
    return out


@dataclass
class Reader:
    """The report's only door into the database (opened read-only by :class:`Store`)."""

    store: Store
    datasets: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()
    #: every query run so far, final SQL with parameters inlined
    log: list[str] = field(default_factory=list)

    def columns(self, relation: str) -> set[str]:
        return set(self.store.query(f"SELECT * FROM {relation} LIMIT 0").columns)

    def has(self, relation: str) -> bool:
        found = self.store.query("SELECT count(*) AS n FROM duckdb_views() WHERE view_name = ? "
                                 "UNION ALL SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [relation, relation])
        return int(found["n"].sum()) > 0

    def query(self, sql: str, params: Sequence[Any] = (), filter_on: Sequence[str] = ("dataset", "backbone")) -> pd.DataFrame:
        """Run ``sql`` (one read-only statement) with the user's filters on the columns it returns."""
        sql = " ".join(sql.split())
        params = list(params)
        cols = set(self.store.query(f"SELECT * FROM ({sql}) LIMIT 0", params).columns)
        where, extra = [], []
        for col, allowed in (("dataset", self.datasets), ("backbone", self.backbones)):
            if allowed and col in filter_on and col in cols:
                where.append(f"{col} IN ({', '.join('?' * len(allowed))})")
                extra.extend(allowed)
        if where:
            sql = f"SELECT * FROM ({sql}) WHERE {' AND '.join(where)}"
            params += extra
        self.log.append(inline(sql, params) + ";")
        return self.store.query(sql, params)

    def take_log(self) -> list[str]:
        """The queries since the last call (one figure's SQL)."""
        out, self.log = self.log, []
        return out
