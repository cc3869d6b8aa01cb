"""DuckDB leaderboard store: migrations, one short-lived writer, read-only readers.

DuckDB lets one process hold a file for writing and blocks everyone else, readers
included. So the writer opens the file only for the milliseconds it takes to
commit one job's rows (bulk-inserted from DataFrames), and readers retry briefly
when they hit that window: ``harness sql`` works while a run is going. A separate
lock file keeps a second *run* from interleaving with the first.
"""

from __future__ import annotations

import contextlib
import graphlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from filelock import FileLock, Timeout

from harness.errors import QueryError, RunLockedError, StoreError

if TYPE_CHECKING:  # pandas (~0.6 s) loads when rows are written or queried: `harness plan` only reads job ids
    import pandas as pd

_RETRY_S = 30.0

#: Every reader connection is sealed off from the machine before it runs anything: no file or URL
#: outside the database (read_csv, glob, COPY … TO, ATTACH, httpfs), no extension installed or loaded
#: behind the user's back, and the configuration locked so a query cannot ``SET`` its way back out.
#: A results file shared by colleagues, or a query pasted from a paper, can then only read the database.
SEALED_READER: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


_MIGRATION = re.compile(r"(\d+)_.*\.sql$")


def _sql_files(extra: Sequence[Path]) -> list[tuple[str, str, str]]:
    """(source, file name, text) of the core's migrations, ``leaderboards/*.sql`` and plugins' SQL folders."""
    out = [(f"harness.migrations/{f.name}", f.name, f.read_text())
           for f in resources.files("harness.migrations").iterdir() if f.name.endswith(".sql")]
    out += [(f"leaderboards/{f.name}", f.name, f.read_text())
            for f in resources.files("harness.leaderboards").iterdir() if f.name.endswith(".sql")]
    for folder in extra:
        if not folder.is_dir():
            raise StoreError(f"{folder}: plugin SQL folder (harness_sql hook) not found")
        out += [(str(f), f.name, f.read_text()) for f in sorted(folder.glob("*.sql"))]
    return out


def _migrations(extra: Sequence[Path] = ()) -> list[tuple[int, str]]:
    """Numbered files (``NNN_name.sql``) from the core and plugins; one version number, one file."""
    seen: dict[int, str] = {}
    out = []
    for source, name, text in _sql_files(extra):
        m = _MIGRATION.match(name)
        if m and not source.startswith("leaderboards/"):
            version = int(m.group(1))
            if version in seen:
                raise StoreError(f"{source}: migration version {version} is also {seen[version]}")
            seen[version] = source
            out.append((version, text))
    return sorted(out)


def view_sql(extra: Sequence[Path] = ()) -> dict[str, str]:
    """``leaderboards/*.sql`` and plugins' unnumbered SQL files: each defines the view named after it."""
    return {Path(name).stem: text for source, name, text in _sql_files(extra)
            if source.startswith("leaderboards/") or (not source.startswith("harness.migrations/")
                                                       and not _MIGRATION.match(name))}


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while a writer holds it; read-only connections are sealed (``SEALED_READER``)."""
    config = dict(SEALED_READER) if read_only else {}
    deadline = time.monotonic() + _RETRY_S
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower() and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            raise StoreError(f"{path}: cannot open database ({msg.splitlines()[0]})") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open database ({str(exc).splitlines()[0]})") from exc


_SQL_COMMENT = re.compile(r"--[^\n]*")


def _view_order(views: dict[str, str]) -> list[str]:
    """Views that others read from first (e.g. ``current_jobs``, ``t_quantiles``), so files need no naming
    order. Dependencies are the other views' names appearing as words in a file's SQL outside comments:
    creation runs inside the migration's transaction, where one failed CREATE aborts the whole transaction,
    so retrying in passes is not an option. A spurious match only adds an ordering constraint."""
    code = {name: _SQL_COMMENT.sub("", sql) for name, sql in views.items()}
    deps = {name: {other for other in views if other != name and re.search(rf"\b{re.escape(other)}\b", text)}
            for name, text in sorted(code.items())}
    try:
        return list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError:
        return sorted(views)  # a real cycle fails below with DuckDB's own message


def _create_views(con: duckdb.DuckDBPyConnection, views: dict[str, str]) -> None:
    for name in _view_order(views):
        try:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {views[name].strip().rstrip(';')}")
        except duckdb.Error as exc:
            raise StoreError(f"leaderboards/{name}.sql: {_first_line(exc)}") from exc


@contextmanager
def _ctrl_c_after() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside a write transaction until it has committed, then raise it.

    DuckDB turns a SIGINT during ``execute`` into ``RuntimeError: Query interrupted``, so a Ctrl-C that lands
    while the driver commits a job would surface as that error instead of the KeyboardInterrupt the runner
    and the CLI handle (the rollback kept the file whole either way). The commit takes milliseconds.
    Only the main thread can own signal handlers; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:  # now as the handler in place would have: default_int_handler raises KeyboardInterrupt
        if callable(old):
            old(signal.SIGINT, None)
        elif old == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)
        elif old != signal.SIG_IGN:
            raise KeyboardInterrupt


class Store:
    def __init__(self, path: Path, extra_sql: Sequence[Path] = ()) -> None:
        """``extra_sql``: plugins' SQL folders (``harness_sql`` hook; ``Factory.store()`` passes them)."""
        self.path = Path(path)
        self.extra_sql = tuple(extra_sql)
        self._run_lock: FileLock | None = None

    # ------------------------------------------------------------------ writing
    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Held for a whole run; a second run on the same file fails fast with a clear error.

        The lock sits beside the *resolved* path, so two runs reaching one database through a symlink
        share it. Re-entrant: the CLI takes it before planning and the runner again inside.
        """
        self._ensure_dir()
        real = self.path.resolve()
        if self._run_lock is None:
            self._run_lock = FileLock(str(real) + ".lock")
        lock = self._run_lock
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(
                f"{self.path}: another harness run is writing to this database (lock {real}.lock); "
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
        with _ctrl_c_after():
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
            for version, sql in _migrations(self.extra_sql):
                if version not in done:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
            _create_views(con, view_sql(self.extra_sql))

    def start_run(self, run_id: str, argv: str, version: str, device: str) -> None:
        with self._write() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, now(), NULL, 'running', ?, ?, ?, ?)",
                [run_id, argv, version, device, os.uname().nodename],
            )

    def mark_killed_runs(self) -> int:
        """Runs still ``running`` while we hold the run lock lost their process (``kill -9``, power
        loss): mark them ``killed``. Call only under :meth:`run_lock`."""
        with self._write() as con:
            n = con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()
            con.execute("UPDATE runs SET status = 'killed' WHERE status = 'running'")
        return int(n[0]) if n else 0

    def finish_run(self, run_id: str, status: str) -> None:
        with self._write() as con:
            con.execute("UPDATE runs SET finished_at = now(), status = ? WHERE run_id = ?", [status, run_id])

    def upsert_entries(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd

        if not rows:
            return
        df = pd.DataFrame(rows)
        df["args"] = df["args"].map(lambda a: json.dumps(a, sort_keys=True, default=str))
        df["meta"] = df["meta"].map(lambda a: json.dumps(a, sort_keys=True, default=str))
        # the configuration as it enters the job id (see leaderboards/current_jobs.sql); None if unknown
        df["config"] = [None if c is None else json.dumps(c, sort_keys=True, default=str)
                        for c in (df["config"] if "config" in df else [None] * len(df))]
        df["tags"] = df["tags"].map(list) if "tags" in df else [[] for _ in range(len(df))]
        with self._write() as con:
            con.register("new_entries", df)
            con.execute("DELETE FROM entries WHERE name IN (SELECT name FROM new_entries)")
            con.execute(
                "INSERT INTO entries (name, kind, plugin, plugin_version, random_init, parent, args, meta, updated_at, "
                "config, tags) SELECT name, kind, plugin, plugin_version, random_init, parent, args::JSON, meta::JSON, "
                "now(), config::JSON, tags::VARCHAR[] FROM new_entries"
            )

    def write_job(self, job: dict[str, Any], scores: list[dict[str, Any]], selections: list[dict[str, Any]],
                  unit_scores: list[dict[str, Any]] | None = None, artifacts: dict[str, str] | None = None) -> None:
        """Replace everything of this job atomically: a rerun never duplicates rows.

        ``artifacts``: name → path of files the head saved (content-addressed: the file stem is its sha256).
        """
        import pandas as pd

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
            # analyses of an earlier fit of this job (harness analyze) describe a model that is being replaced
            for table in ("scores", "selections", "unit_scores", "artifacts", "clusters", "channel_images", "jobs"):
                con.execute(f"DELETE FROM {table} WHERE job_id = ?", [jid])
            for col in ("images", "subjects", "model_rdms"):  # migration 004: protocol and predicted-RDM link
                if col not in job_df:
                    job_df[col] = None
            job_df[["images", "subjects", "model_rdms"]] = job_df[["images", "subjects", "model_rdms"]].astype("string")
            con.register("job_df", job_df)
            con.execute(
                "INSERT INTO jobs (job_id, run_id, backbone, head, dataset, subject, status, error, wall_s, config, "
                "random_init, weights_digest, tokens_key, n_excluded, started_at, finished_at, images, subjects, "
                "model_rdms) SELECT job_id, run_id, backbone, head, dataset, subject, status, error, wall_s, "
                "config::JSON, random_init, weights_digest, tokens_key, n_excluded, started_at, finished_at, images, "
                "subjects, model_rdms FROM job_df"
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
            for name, path in (artifacts or {}).items():
                con.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?)", [jid, name, str(path), Path(path).stem])

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
        """One read-only query on a sealed connection (see ``SEALED_READER``).

        The sealed, read-only connection is what keeps the machine and the database safe; the
        statement check below is a second layer that turns anything but one query into a clear
        bad-input error (exit 2) instead of a DuckDB message.
        """
        with self.read() as con:
            check_query(con, sql)
            try:
                return con.execute(sql, params or []).df()
            except duckdb.PermissionException as exc:
                raise QueryError(f"SQL refused: {_first_line(exc)} (harness sql reads only the results database)") from exc
            except duckdb.Error as exc:
                raise QueryError(f"SQL error: {_first_line(exc)}") from exc


#: statement kinds ``harness sql`` runs: queries (SELECT/WITH/FROM/VALUES/DESCRIBE/SHOW/SUMMARIZE parse as
#: SELECT), EXPLAIN of a query, and PRAGMA (``table_info``…; settings are locked anyway)
_QUERY_TYPES = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.PRAGMA})


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Exactly one query statement, judged by DuckDB's own parser (a ``;`` inside a string is fine)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryError(f"one query at a time, not {len(statements)} statements")
    kind = statements[0].type
    if kind not in _QUERY_TYPES:
        raise QueryError(f"only read-only queries (SELECT/WITH/DESCRIBE/SHOW/EXPLAIN …) are accepted, not {kind.name}")
