"""The harness used as a careful user (or an attacker) would: every finding of issue 16 as a test.

1. ``harness sql`` cannot read, write or fetch anything outside the results database.
2. A damaged token cache is detected, quarantined and extracted again; it never gives numbers silently.
3. Views show the current configuration of every name only, with a proper CI of the mean over subjects.
4. Square brackets in any user text print literally on every CLI path.
5. The smaller ones: empty runs, damaged archives, killed runs, locks, YAML, Ctrl-C, SQL exit codes, ties.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import xxhash
import yaml
from harness_datasets.synthetic import procedural_images
from scipy import stats

from harness import cache_integrity
from harness.cache import TokenCache
from harness.contracts import BuildContext, Stimuli
from harness.errors import DataError, RegistryError, RunLockedError
from harness.extract import ensure_tokens
from harness.plan import Plan, make_plan
from harness.runner import Runner
from harness.settings import load_settings
from harness.specs import RegistryEntry
from harness.store import Store
from tests.fixtures import algonauts_folder
from tests.helpers import TinyCNN, make_factory

# ---------------------------------------------------------------------------------------------- helpers


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``harness ARGS`` in this process (no interpreter start-up): exit code, stdout, stderr."""
    from harness.cli import main

    monkeypatch.setattr(sys, "argv", ["harness", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness_env: Path) -> Path:
    """Private home, database and (empty) registry; HOME too, so a DuckDB extension folder would show."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    reg = tmp_path / "registry.yaml"
    reg.write_text("plugin_entries: false\n")
    monkeypatch.setenv("HARNESS_REGISTRY", str(reg))
    return tmp_path


def fake_job(store: Store, job_id: str, backbone: str, subject: str, raw: float, ci: tuple[float, float],
             config: dict | None = None, head: str = "h", dataset: str = "d") -> None:
    """A finished job with one score row, written through the store like the runner does."""
    cfg = config or {"backbone": {"args": {}}, "head": {"args": {}}, "dataset": {"args": {}}, "metrics": {}}
    store.write_job(
        {"job_id": job_id, "run_id": "r", "backbone": backbone, "head": head, "dataset": dataset, "subject": subject,
         "status": "done", "error": None, "wall_s": 1.0, "config": cfg, "random_init": False, "weights_digest": None,
         "tokens_key": None, "n_excluded": 0, "started_at": None, "finished_at": None},
        [{"job_id": job_id, "metric": "m", "roi": "IT", "subject": "", "raw": raw, "ceiling": None, "normalised": None,
          "ci_low": ci[0], "ci_high": ci[1], "n": 10, "p_value": None, "extra": {}}], [])


def entry(name: str, kind: str, config: dict | None) -> dict:
    return {"name": name, "kind": kind, "plugin": "p", "plugin_version": "1", "random_init": False, "parent": None,
            "args": {}, "meta": {}, "config": config}


# ------------------------------------------------------------------------------ 1. harness sql is sealed


@pytest.fixture
def db(env: Path) -> Path:
    store = Store(env / "lb.duckdb")
    store.migrate()
    fake_job(store, "j1", "net", "all", 0.5, (0.4, 0.6))
    return store.path


def test_sql_cannot_read_files(db: Path, env: Path, monkeypatch, capsys) -> None:
    secret = env / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    for q in ("SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/root/*')",
              "SELECT * FROM read_text('/etc/*')", f"SELECT * FROM read_text('{secret}')",
              f"SELECT * FROM read_csv('{secret}')", f"ATTACH '{env / 'other.duckdb'}'"):
        code, out, err = cli(monkeypatch, capsys, "sql", q)
        assert code == 2, (q, code, out, err)
        assert "root:" not in out and "TOP-SECRET" not in out and "TOP-SECRET" not in err, q
        assert err.strip().count("\n") == 0 and "error:" in err
    assert not (env / "other.duckdb").exists()


def test_sql_cannot_write_files(db: Path, env: Path, monkeypatch, capsys) -> None:
    target = env / "victim.txt"
    target.write_text("precious\n")
    before = target.stat().st_mtime_ns
    for q in (f"EXPLAIN ANALYZE COPY (SELECT 'x') TO '{target}' (HEADER false)",
              f"COPY (SELECT 'x') TO '{target}' (HEADER false)", f"COPY (SELECT 'x') TO '{env / 'new.csv'}'"):
        code, out, err = cli(monkeypatch, capsys, "sql", q)
        assert code == 2, (q, out, err)
    assert target.read_text() == "precious\n" and target.stat().st_mtime_ns == before
    assert not (env / "new.csv").exists()


def test_sql_cannot_fetch_or_install(db: Path, env: Path, monkeypatch, capsys) -> None:
    """No extension is installed or loaded (the refusal comes before any file or socket is opened)."""
    for q in ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "INSTALL httpfs", "LOAD httpfs",
              "SET enable_external_access = true", "SET autoinstall_known_extensions = true"):
        code, out, err = cli(monkeypatch, capsys, "sql", q)
        assert code == 2, (q, out, err)
    assert not (env / "user" / ".duckdb").exists()
    assert not (Path.home() / ".duckdb").exists() or Path.home() == env / "user"


def test_sql_still_answers_queries(db: Path, monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, "sql", "SELECT 'a;b' AS x, count(*) AS n FROM jobs")
    assert code == 0 and "a;b" in out  # a semicolon inside a string is not a second statement
    for q in ("SELECT backbone, raw, ci_low, ci_method FROM leaderboard", "DESCRIBE jobs", "SHOW TABLES",
              "SUMMARIZE scores", "PRAGMA table_info('jobs')", "EXPLAIN SELECT * FROM leaderboard",
              "SELECT * FROM current_jobs", "SELECT * FROM hierarchy", "SELECT * FROM layer_choice"):
        code, out, err = cli(monkeypatch, capsys, "sql", q)
        assert code == 0, (q, err)
    code, _, err = cli(monkeypatch, capsys, "sql", "SELECT 1; SELECT 2")
    assert code == 2 and "2 statements" in err
    code, _, err = cli(monkeypatch, capsys, "sql", "DELETE FROM jobs")
    assert code == 2 and "read-only" in err
    code, _, err = cli(monkeypatch, capsys, "sql", "SELEC nonsense")
    assert code == 2 and "SQL error" in err


# ------------------------------------------------------------------------------- 2. token cache integrity

CACHE_REG = {"backbones": {"mnv2": {"plugin": "torchvision", "random_init": True}}}


@pytest.fixture
def extracted(tmp_path: Path, harness_env: Path):
    settings = load_settings()
    torch.manual_seed(0)
    entry_ = RegistryEntry(name="tiny", kind="backbone", plugin="tiny_cnn_test")  # type: ignore[arg-type]
    bb = TinyCNN(TinyCNN.spec.args(), BuildContext(entry=entry_, settings=settings, seed=0))
    stim = Stimuli.from_array(procedural_images(5, 32, 7))
    cache = TokenCache(settings.cache_dir)  # $HARNESS_HOME/cache, where `harness cache` looks
    store = ensure_tokens(bb, stim, cache, batch_size=2, max_grid=4)
    reference = {layer: np.array(store.local(layer)) for layer in store.layers}
    return bb, stim, cache, store, reference


def test_checksums_recorded_while_writing(extracted) -> None:
    _, _, _, store, _ = extracted
    files = store.meta["files"]
    assert sorted(files) == sorted(p.name for p in store.path.glob("*.npy"))
    for name, rec in files.items():  # an independent read-back of every file
        data = (store.path / name).read_bytes()
        assert rec == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}


def test_same_size_garbage_is_caught_and_reextracted(extracted, caplog) -> None:
    bb, stim, cache, store, reference = extracted
    layer = store.layers[-1]
    victim = store._file(layer, "local")
    size = victim.stat().st_size
    header = np.load(victim, mmap_mode="r").offset
    with open(victim, "r+b") as fh:  # same size, valid header, garbage values
        fh.seek(header)
        fh.write(np.random.default_rng(0).bytes(size - header))
    with caplog.at_level(logging.WARNING, logger="harness.cache"):
        again = ensure_tokens(bb, stim, cache, batch_size=2, max_grid=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and store.key in warnings[0] and victim.name in warnings[0]
    for name in store.layers:
        np.testing.assert_array_equal(np.asarray(again.local(name)), reference[name])
    assert len(list((cache.root / cache_integrity.QUARANTINE).iterdir())) == 1


def test_truncated_npy_is_reextracted(extracted) -> None:
    bb, stim, cache, store, reference = extracted
    victim = store._file(store.layers[0], "global")
    with open(victim, "r+b") as fh:
        fh.truncate(victim.stat().st_size // 2)
    again = ensure_tokens(bb, stim, cache, batch_size=2, max_grid=4)
    for name in store.layers:
        np.testing.assert_array_equal(np.asarray(again.local(name)), reference[name])
        assert np.asarray(again.global_(name)).shape[0] == 5


def test_untouched_entry_is_not_reread(extracted, monkeypatch) -> None:
    """Checksums cost a full read, so an entry whose files did not change since verification is trusted."""
    bb, stim, cache, store, _ = extracted
    calls = []
    real = cache_integrity.file_checksum
    monkeypatch.setattr(cache_integrity, "file_checksum", lambda p: calls.append(p) or real(p))
    ensure_tokens(bb, stim, cache, batch_size=2, max_grid=4)
    assert calls == []
    os.utime(store._file(store.layers[0], "local"))  # touched: verify again (and pass)
    assert cache.open(store.key) is not None and len(calls) == len(store.meta["files"])


def test_cache_ls_and_verify_survive_damage(extracted, env: Path, monkeypatch, capsys) -> None:
    _, _, cache, store, _ = extracted
    # a second entry with a truncated meta.json, the first with a garbled byte
    broken = cache.root / ("f" * 32)
    shutil_copy(store.path, broken)
    meta = broken / "meta.json"
    meta.write_text(meta.read_text()[:40])
    victim = store._file(store.layers[1], "local")
    with open(victim, "r+b") as fh:
        fh.seek(victim.stat().st_size - 1)
        fh.write(b"\x7f")
    code, out, err = cli(monkeypatch, capsys, "cache", "ls")
    assert code == 0, err
    assert "damaged: meta.json is damaged" in out and "ok" in out
    code, out, err = cli(monkeypatch, capsys, "cache", "verify")
    assert code == 1, out + err
    assert f"{store.key}: {victim.name} does not match its checksum" in out and "0 entries ok, 2 damaged" in out
    assert [k for k, _, _ in cache.scan()] == []


def shutil_copy(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)


def test_stale_temp_folders_of_dead_extractions_are_removed(tmp_path: Path, harness_env: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    f = make_factory(CACHE_REG, tmp_path)
    cache = TokenCache(f.settings.cache_dir)
    cache.root.mkdir(parents=True)
    orphan = cache.root / f".{'a' * 32}.tmp-{dead.pid}-123"  # the format a kill -9 leaves behind
    alive = cache.root / f".{'b' * 32}.tmp-{os.getpid()}-456"
    other_host = cache.root / f".{'c' * 32}.tmp-{dead.pid}-789-some-other-host"
    for p in (orphan, alive, other_host):
        p.mkdir()
        (p / "000_local.npy").write_bytes(b"x" * 100)
    Runner(f, Store(tmp_path / "lb.duckdb")).run(Plan())  # a run starts by cleaning up
    assert not orphan.exists() and alive.exists() and other_host.exists()


# ------------------------------------------------------------------ 3. current configuration, CI of the mean


def test_view_follows_an_edited_registry_argument(tmp_path: Path, harness_env: Path) -> None:
    algo = algonauts_folder(tmp_path / "algo", n=10, n_sub=2)
    reg = {"backbones": {"net": {"plugin": "torchvision", "random_init": True}},
           "heads": {"rsa": {"plugin": "rsa", "args": {"features": "local", "pool": 2}}},
           "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 10}}},
           "datasets": {"algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}}}}
    store = Store(tmp_path / "lb.duckdb")

    def run_and_read(registry: dict) -> float:
        f = make_factory(registry, tmp_path, batch_size=10, max_grid=4)
        Runner(f, store).run(make_plan(f))
        board = store.query("SELECT raw, n_subjects FROM leaderboard WHERE roi = 'IT' AND metric = 'r2'")
        assert len(board) == 1 and board.n_subjects[0] == 1
        return float(board.raw[0])

    local = run_and_read(reg)
    reg["heads"]["rsa"]["args"]["features"] = "global"
    glob = run_and_read(reg)
    jobs = store.query("SELECT job_id, c.raw FROM jobs JOIN scores c USING (job_id) "
                       "WHERE c.roi = 'IT' AND c.metric = 'r2' AND c.subject = '' ORDER BY started_at")
    assert len(jobs) == 2 and jobs.raw[0] == pytest.approx(local) and jobs.raw[1] == pytest.approx(glob)
    assert local != pytest.approx(glob)  # the two configurations really differ, so an average would show
    # editing the data (a new digest) replaces the dataset's rows the same way
    original = (algo / "rdms.npz").read_bytes()
    with np.load(algo / "rdms.npz") as z:
        rdms = {k: z[k] for k in z.files}
    rdms["IT"] = rdms["IT"][:, ::-1, ::-1].copy()
    np.savez(algo / "rdms.npz", **rdms)
    flipped = run_and_read(reg)
    newest = store.query("SELECT c.raw FROM jobs JOIN scores c USING (job_id) WHERE c.roi = 'IT' "
                         "AND c.metric = 'r2' AND c.subject = '' ORDER BY started_at DESC LIMIT 1").raw[0]
    assert flipped == pytest.approx(newest) and len(store.query("SELECT * FROM jobs")) == 3
    assert len(store.query("SELECT * FROM current_jobs")) == 1
    # reverting argument and data brings the first job back (it is done already: nothing reruns)
    (algo / "rdms.npz").write_bytes(original)
    reg["heads"]["rsa"]["args"]["features"] = "local"
    assert run_and_read(reg) == pytest.approx(local) and len(store.query("SELECT * FROM jobs")) == 3


def test_current_jobs_compares_configs_not_names(env: Path) -> None:
    store = Store(env / "lb.duckdb")
    store.migrate()
    old = {"backbone": {"args": {"a": 1}}, "head": {"args": {"features": "local"}}, "dataset": {"digest": "x"},
           "metrics": {"m": {"args": {"n_boot": 10}}}}
    new = {**old, "head": {"args": {"features": "global"}}}
    newer_metric = {**new, "metrics": {"m": {"args": {"n_boot": 20}}}}
    fake_job(store, "old", "net", "s1", 0.036, (0.03, 0.04), old)
    fake_job(store, "new", "net", "s1", 0.0204, (0.01, 0.03), new)
    fake_job(store, "metric", "net", "s1", 0.5, (0.4, 0.6), newer_metric)
    store.upsert_entries([entry("net", "backbone", {"args": {"a": 1}}), entry("h", "head", {"args": {"features": "global"}}),
                          entry("d", "dataset", {"digest": "x"}), entry("m", "metric", {"args": {"n_boot": 10}})])
    assert list(store.query("SELECT job_id FROM current_jobs").job_id) == ["new"]
    board = store.query("SELECT raw, n_subjects FROM leaderboard")
    assert board.raw.tolist() == [pytest.approx(0.0204)] and board.n_subjects.tolist() == [1]
    assert len(store.query("SELECT * FROM jobs")) == 3  # history stays queryable


@pytest.mark.parametrize("n", [1, 4, 32])
def test_ci_is_a_t_interval_of_the_subject_mean(env: Path, n: int) -> None:
    store = Store(env / "lb.duckdb")
    store.migrate()
    raws = np.random.default_rng(n).normal(0.3, 0.05, n)
    for i, r in enumerate(raws):
        fake_job(store, f"j{i}", "net", f"s{i}", float(r), (float(r) - 0.01, float(r) + 0.01))
    row = store.query("SELECT raw, ci_low, ci_high, n_subjects, ci_method FROM leaderboard").iloc[0]
    if n == 1:  # one subject: its own bootstrap CI
        assert (row.ci_low, row.ci_high, row.ci_method) == (pytest.approx(raws[0] - 0.01), pytest.approx(raws[0] + 0.01),
                                                             "bootstrap")
        return
    lo, hi = stats.t.interval(0.95, n - 1, loc=raws.mean(), scale=stats.sem(raws))
    assert row.n_subjects == n and row.ci_method == "t_subjects"
    assert row.ci_low == pytest.approx(lo, abs=1e-5) and row.ci_high == pytest.approx(hi, abs=1e-5)


@pytest.mark.parametrize("n", [1, 5])
def test_hierarchy_slope_ci_is_a_t_interval_of_the_subject_mean(env: Path, n: int) -> None:
    """The hierarchy view's slope CI follows the leaderboard's rule, not an average of per-subject bounds."""
    store = Store(env / "lb.duckdb")
    store.migrate()
    store.upsert_entries([{**entry("hier", "metric", None), "plugin": "hierarchy_slope"}])
    slopes = np.random.default_rng(n).normal(0.8, 0.2, n)
    for i, slope in enumerate(slopes):
        fake_job(store, f"j{i}", "net", f"s{i}", 0.0, (0.0, 0.0))
        store.write_job(
            {"job_id": f"h{i}", "run_id": "r", "backbone": "net", "head": "h", "dataset": "d", "subject": f"s{i}",
             "status": "done", "error": None, "wall_s": 1.0, "config": {"backbone": {"args": {}}, "head": {"args": {}},
                                                                        "dataset": {"args": {}}, "metrics": {}},
             "random_init": False, "weights_digest": None, "tokens_key": None, "n_excluded": 0, "started_at": None,
             "finished_at": None},
            [{"job_id": f"h{i}", "metric": "hier", "roi": "all", "subject": "", "raw": float(slope), "ceiling": None,
              "normalised": None, "ci_low": float(slope) - 0.1, "ci_high": float(slope) + 0.3, "n": 50,
              "p_value": None, "extra": {}}], [])
    row = store.query("SELECT slope, slope_ci_low, slope_ci_high, slope_ci_method FROM hierarchy").iloc[0]
    assert row.slope == pytest.approx(slopes.mean())
    if n == 1:
        assert (row.slope_ci_low, row.slope_ci_high, row.slope_ci_method) == (
            pytest.approx(slopes[0] - 0.1), pytest.approx(slopes[0] + 0.3), "bootstrap_units")
        return
    lo, hi = stats.t.interval(0.95, n - 1, loc=slopes.mean(), scale=stats.sem(slopes))
    assert row.slope_ci_method == "t_subjects"
    assert row.slope_ci_low == pytest.approx(lo, abs=1e-5) and row.slope_ci_high == pytest.approx(hi, abs=1e-5)


@pytest.mark.parametrize("df", [1, 7, 30, 31, 60, 500])
def test_t_quantiles_view_matches_scipy(env: Path, df: int) -> None:
    store = Store(env / "lb.duckdb")
    store.migrate()
    q = store.query(f"SELECT q975 FROM t_quantiles WHERE df = {df}").iloc[0, 0]
    assert q == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4)


def test_rank_ties_print_in_name_order(env: Path, monkeypatch, capsys) -> None:
    store = Store(env / "lb.duckdb")
    store.migrate()
    names = ["zeta", "beta", "omega", "alpha", "kappa", "delta", "gamma", "eta"]
    for i, name in enumerate(names):
        fake_job(store, f"j{i}", name, "all", 0.5, (0.4, 0.6))
    code, out, err = cli(monkeypatch, capsys, "leaderboard", "--metric", "m")
    assert code == 0, err
    printed = [n for line in out.splitlines() for n in names if f" {n} " in line]
    assert printed == sorted(names)


# ------------------------------------------------------------------------------ 4. brackets print literally

NASTY = ("[bold]", "[/x]", "[")


def test_brackets_in_db_path_and_errors(env: Path, monkeypatch, capsys) -> None:
    db = env / "x[/y]" / "[bold]a[.duckdb"
    code, out, err = cli(monkeypatch, capsys, "--db", str(db), "leaderboard")
    assert code == 3 and str(db) in err and "MarkupError" not in err
    Store(env / "lb.duckdb").migrate()  # unknown views are judged against a database that exists
    for bad in NASTY:
        code, _, err = cli(monkeypatch, capsys, "list", "--kind", bad)
        assert code == 2 and repr(bad) in err, err
        code, _, err = cli(monkeypatch, capsys, "--db", str(env / "lb.duckdb"), "leaderboard", "--view", bad)
        assert code == 2 and repr(bad) in err, err


def test_brackets_in_skip_tables_and_failed_jobs(env: Path, monkeypatch, capsys) -> None:
    """Layout text, entry names and paths with brackets in `plan` and `run` skip tables, a failed job's
    printout and the empty-run error; the damaged archive's error names the file."""
    root = env / "[bold]data[/x]["
    algo = algonauts_folder(root / "algo", n=8, n_sub=2)
    data = (algo / "rdms.npz").read_bytes()
    (algo / "rdms.npz").write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))  # damaged
    reg = env / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {"net": {"plugin": "torchvision", "random_init": True}},
        "heads": {"rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 10}}},
        "datasets": {"folder": {"plugin": "folder", "args": {"root": str(root / "missing[")}},
                     "algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}}}}))
    code, out, err = cli(monkeypatch, capsys, "plan", "--all")
    assert code == 0, err
    flat = out.replace("\n", "").replace("│", "").replace(" ", "")
    assert "[/<subject>]" in flat and "[bold]data[/x][/missing[" in flat
    code, out, err = cli(monkeypatch, capsys, "run", "-d", "folder")
    assert code == 2 and "nothing to run" in err and "[/<subject>]" in err and "[bold]data[/x][" in err
    assert "[/<subject>]" in out.replace("\n", "").replace("│", "").replace(" ", "")
    code, out, err = cli(monkeypatch, capsys, "run", "-d", "algo")
    assert code == 1, out + err
    printed = "".join(out.split())  # long lines wrap at the console width
    assert f"failednet×rsa×algo/all:{algo / 'rdms.npz'}:damaged" in printed


# --------------------------------------------------------------------------------------- 5. smaller ones


def test_damaged_npz_error_names_the_file(tmp_path: Path) -> None:
    from harness_datasets.algonauts2019 import read_fmri_rdms

    algo = algonauts_folder(tmp_path / "algo", n=6, n_sub=1)
    npz = algo / "rdms.npz"
    with zipfile.ZipFile(npz) as z:
        offset = z.getinfo("IT.npy").header_offset + 100
    data = bytearray(npz.read_bytes())
    data[offset] ^= 0xFF  # one flipped byte inside a stored member: Bad CRC-32
    npz.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"rdms\.npz: damaged") as exc:
        read_fmri_rdms(algo, ("EVC", "IT"))
    assert str(npz) in str(exc.value)


def test_killed_run_is_marked_on_next_start(tmp_path: Path, harness_env: Path) -> None:
    store = Store(tmp_path / "lb.duckdb")
    store.migrate()
    store.start_run("gone", "harness run --all", "0", "cpu")  # its process died without finishing
    f = make_factory(CACHE_REG, tmp_path)
    Runner(f, store).run(Plan())
    status = dict(store.query("SELECT run_id, status FROM runs").itertuples(index=False))
    assert status.pop("gone") == "killed" and list(status.values()) == ["done"]


def test_run_lock_sees_through_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "lb.duckdb"
    link = tmp_path / "link.duckdb"
    real.touch()
    link.symlink_to(real)
    with Store(real).run_lock(), pytest.raises(RunLockedError), Store(link).run_lock():
        pass


def test_run_lock_is_taken_before_planning(env: Path, monkeypatch, capsys) -> None:
    import harness.cli.run

    planned = []
    monkeypatch.setattr(harness.cli.run, "make_selected_plan", lambda *a, **k: planned.append(1) or Plan())
    with Store(env / "lb.duckdb").run_lock():
        code, _, err = cli(monkeypatch, capsys, "run", "--all")
    assert code == 4 and "another harness run" in err and planned == []


def test_yaml_errors_keep_position_and_reject_duplicates(tmp_path: Path) -> None:
    from harness.plugins import default_catalog
    from harness.registry import load_registry

    bad = tmp_path / "bad.yaml"
    bad.write_text("heads:\n  ridge: {plugin: ridge, args: {alphas: [1, 2}\n")
    with pytest.raises(RegistryError, match=r"bad\.yaml: invalid YAML: line 2, column \d+: "):
        load_registry(default_catalog(), bad, load_settings())
    dup = tmp_path / "dup.yaml"
    dup.write_text("plugin_entries: false\nheads:\n  r: {plugin: ridge}\n  r: {plugin: rsa}\n")
    with pytest.raises(RegistryError, match=r"dup\.yaml: invalid YAML: line 4, column 3: duplicate key 'r' "
                                            r"\(first at line 3, column 3\)"):
        load_registry(default_catalog(), dup, load_settings())
    nested = tmp_path / "nested.yaml"
    nested.write_text("plugin_entries: false\nheads:\n  r: {plugin: ridge, args: {pool: 2, pool: 3}}\n")
    with pytest.raises(RegistryError, match="duplicate key 'pool'"):
        load_registry(default_catalog(), nested, load_settings())


def test_ctrl_c_says_how_to_resume(env: Path, monkeypatch, capsys) -> None:
    import harness.cli.run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.cli.run, "open_factory", interrupted)
    code, _, err = cli(monkeypatch, capsys, "run", "--all")
    assert code == 130 and "interrupted" in err and "rerun to resume" in err
