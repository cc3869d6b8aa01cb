"""DuckDB leaderboard store: migrations, one short-lived writer, read-only readers.

DuckDB lets one process hold a file for writing and blocks everyone else, readers
included. So the writer opens the file only for the milliseconds it takes to
commit one job's rows (bulk-inserted from DataFrames), and readers retry briefly
when they hit that window: ``harness sql`` works while a run is going. A separate
lock file keeps a second *run* from interleaving with the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from harness.errors import RunLockedError, StoreError

_RETRY_S = 30.0
_READ_ONLY_SQL = re.compile(r"^\s*(select|with|describe|show|summarize|pragma\s+table_info|explain|from|values)\b", re.I)


def _migrations() -> list[tuple[int, str]]:
    files = resources.files("harness.migrations")
    out = []
    for f in files.iterdir():
        m = re.match(r"(\d+)_.*\.sql$", f.name)
        if m:
            out.append((int(m.group(1)), f.read_text()))
    return sorted(out)


def view_sql() -> dict[str, str]:
    """``leaderboards/*.sql``: each file defines the view named after it."""
    files = resources.files("harness.leaderboards")
    return {Path(f.name).stem: f.read_text() for f in files.iterdir() if f.name.endswith(".sql")}


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + _RETRY_S
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            raise StoreError(f"{path}: cannot open database ({msg.splitlines()[0]})") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open database ({str(exc).splitlines()[0]})") from exc


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Held for a whole run; a second run on the same file fails fast with a clear error."""
        self._ensure_dir()
        lock = FileLock(str(self.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(
                f"{self.path}: another harness run is writing to this database (lock {self.path}.lock); "
                "wait for it to finish or pass a different --db"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create database folder ({exc.strerror or exc})") from exc
        if not os.access(self.path.parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise StoreError(f"{self.path}: database path is not writable")

    @contextmanager
    def _write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self._ensure_dir()
        con = _connect(self.path, read_only=False)
        try:
            con.execute("BEGIN TRANSACTION")
            yield con
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def writer(self) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """The one short-lived write transaction, for core extensions that own a table (e.g. fine-tunes)."""
        return self._write()

    def migrate(self) -> None:
        with self._write() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
            done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, sql in _migrations():
                if version not in done:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
            for name, sql in sorted(view_sql().items()):
                con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql.strip().rstrip(';')}")

    def start_run(self, run_id: str, argv: str, version: str, device: str) -> None:
        with self._write() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, now(), NULL, 'running', ?, ?, ?, ?)",
                [run_id, argv, version, device, os.uname().nodename],
            )

    def finish_run(self, run_id: str, status: str) -> None:
        with self._write() as con:
            con.execute("UPDATE runs SET finished_at = now(), status = ? WHERE run_id = ?", [status, run_id])

    def upsert_entries(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        df = pd.DataFrame(rows)
        df["args"] = df["args"].map(lambda a: json.dumps(a, sort_keys=True, default=str))
        df["meta"] = df["meta"].map(lambda a: json.dumps(a, sort_keys=True, default=str))
        df["tags"] = df["tags"].map(list) if "tags" in df else [[] for _ in range(len(df))]
        with self._write() as con:
            con.register("new_entries", df)
            con.execute("DELETE FROM entries WHERE name IN (SELECT name FROM new_entries)")
            con.execute(
                "INSERT INTO entries (name, kind, plugin, plugin_version, random_init, parent, args, meta, updated_at, "
                "tags) SELECT name, kind, plugin, plugin_version, random_init, parent, args::JSON, meta::JSON, now(), "
                "tags::VARCHAR[] FROM new_entries"
            )

    def write_job(self, job: dict[str, Any], scores: list[dict[str, Any]], selections: list[dict[str, Any]],
                  unit_scores: list[dict[str, Any]] | None = None) -> None:
        """Replace everything of this job atomically: a rerun never duplicates rows."""
        job = dict(job)
        job["config"] = json.dumps(job["config"], sort_keys=True, default=str)
        job_df = pd.DataFrame([job])
        score_cols = ["job_id", "metric", "roi", "subject", "raw", "ceiling", "normalised", "ci_low", "ci_high", "n", "p_value", "extra"]
        sel_cols = ["job_id", "unit", "roi", "selector", "layer", "layer_index", "n_layers", "weight", "value"]
        sdf = pd.DataFrame(scores, columns=score_cols)
        sdf["extra"] = sdf["extra"].map(lambda e: json.dumps(e or {}, default=float))
        sdf = sdf.astype({c: "float64" for c in ["raw", "ceiling", "normalised", "ci_low", "ci_high", "p_value"]})
        sdf["n"] = sdf["n"].astype("Int64")
        seldf = pd.DataFrame(selections, columns=sel_cols).astype(
            {"unit": "string", "roi": "string", "selector": "string", "layer": "string", "weight": "float64", "value": "float64"}
        )
        seldf["layer_index"] = seldf["layer_index"].astype("Int64")
        seldf["n_layers"] = seldf["n_layers"].astype("Int64")
        unit_cols = ["job_id", "metric", "roi", "unit", "value"]
        udf = pd.DataFrame(unit_scores or [], columns=unit_cols).astype(
            {"metric": "string", "roi": "string", "unit": "string", "value": "float64"})
        with self._write() as con:
            jid = job["job_id"]
            for table in ("scores", "selections", "unit_scores", "jobs"):
                con.execute(f"DELETE FROM {table} WHERE job_id = ?", [jid])
            con.register("job_df", job_df)
            con.execute(
                "INSERT INTO jobs SELECT job_id, run_id, backbone, head, dataset, subject, status, error, wall_s, "
                "config::JSON, random_init, weights_digest, tokens_key, n_excluded, started_at, finished_at FROM job_df"
            )
            if len(sdf):
                con.register("score_df", sdf)
                con.execute(f"INSERT INTO scores SELECT {', '.join(score_cols[:-1])}, extra::JSON FROM score_df")
            if len(seldf):
                con.register("sel_df", seldf)
                con.execute(f"INSERT INTO selections SELECT {', '.join(sel_cols)} FROM sel_df")
            if len(udf):
                con.register("unit_df", udf)
                con.execute(f"INSERT INTO unit_scores SELECT {', '.join(unit_cols)} FROM unit_df")

    # ------------------------------------------------------------------ reading
    def finished_jobs(self) -> set[str]:
        if not self.path.exists():
            return set()
        with self.read() as con:
            try:
                return {r[0] for r in con.execute("SELECT job_id FROM jobs WHERE status = 'done'").fetchall()}
            except duckdb.CatalogException:
                return set()

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.exists():
            raise StoreError(f"{self.path}: no database yet; run `harness run` first")
        con = _connect(self.path, read_only=True)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Read-only SQL: the connection is opened read-only and only query statements are accepted."""
        if not _READ_ONLY_SQL.match(sql) or ";" in sql.strip().rstrip(";"):
            raise StoreError("only a single read-only query (SELECT/WITH/DESCRIBE/SHOW/…) is accepted")
        with self.read() as con:
            try:
                return con.execute(sql, params or []).df()
            except duckdb.Error as exc:
                raise StoreError(f"SQL error: {str(exc).splitlines()[0]}") from exc
