"""The command line as a user meets it: exit codes, one-line errors, read-only queries while running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures import algonauts_folder


def cli(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    algo = algonauts_folder(tmp_path / "algo", n=10, n_sub=3)
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True},
                      "mnv2_real": {"plugin": "torchvision", "args": {"weights": str(tmp_path / "nope.safetensors")}}},
        "heads": {"rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 20}}},
        "datasets": {"algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}}},
    }))
    e = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    return {**e, "HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB": str(tmp_path / "lb.duckdb"),
            "HARNESS_REGISTRY": str(reg), "HARNESS_CONFIG": str(tmp_path / "none.toml"), "HF_HUB_OFFLINE": "1"}


def test_help_and_list(env: dict[str, str]) -> None:
    r = cli("--help", env=env)
    assert r.returncode == 0 and "run" in r.stdout and "leaderboard" in r.stdout
    r = cli("list", "--kind", "head", env=env)
    assert r.returncode == 0 and "ridge" in r.stdout and "timm" not in r.stdout
    r = cli("list", "--kind", "network", env=env)
    assert r.returncode == 2 and "--kind must be one of" in r.stderr


def test_plan_run_leaderboard_sql_cache(env: dict[str, str], tmp_path: Path) -> None:
    r = cli("plan", "--all", env=env)
    assert r.returncode == 0, r.stderr
    assert "to run" in r.stdout
    # the missing weights are skipped with the file named, not crashed on
    assert "mnv2_real" in r.stdout and "nope.safetensors" in r.stdout
    r = cli("run", "--all", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 done" in r.stdout
    r = cli("plan", "--all", env=env)
    assert "done" in r.stdout and "to run" not in r.stdout
    r = cli("leaderboard", "--dataset", "algo", "--roi", "IT", env=env)
    assert r.returncode == 0 and "mnv2_rand" in r.stdout
    r = cli("leaderboard", "--view", "nope", env=env)
    assert r.returncode == 2 and "unknown view" in r.stderr
    r = cli("sql", "SELECT backbone, status FROM jobs", "--parquet", str(tmp_path / "j.parquet"), env=env)
    assert r.returncode == 0 and (tmp_path / "j.parquet").stat().st_size > 0
    r = cli("sql", "DELETE FROM jobs", env=env)
    assert r.returncode == 2 and "read-only" in r.stderr  # bad input, not a database problem
    r = cli("cache", "ls", env=env)
    assert "mnv2_rand" in r.stdout
    r = cli("cache", "clear", env=env)
    assert "removed 1" in r.stdout
    # explicitly asking for the missing-weights entry: nothing to run (exit 2), the file named
    r = cli("run", "-b", "mnv2_real", "-H", "rsa", "-d", "algo", env=env)
    assert r.returncode == 2 and "skipped" in r.stdout and "nope.safetensors" in r.stdout
    assert "nothing to run" in r.stderr and "nope.safetensors" in r.stderr


def test_bad_registry_exit_code(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("heads:\n  r: {plugin: ridge, args: {alpahs: [1]}}\n")
    r = cli("--registry", str(bad), "plan", "--all", env=env)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "heads.r: args.alpahs: unknown argument" in r.stderr.replace("\n", "")


def test_sql_works_while_a_run_writes(env: dict[str, str], tmp_path: Path) -> None:
    """The writer holds DuckDB only per job commit, so readers get in while a run is going."""
    env = {**env, "HARNESS_DB": str(tmp_path / "busy.duckdb")}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--all", "--random-init"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        seen_running = False
        while time.monotonic() < deadline and proc.poll() is None:
            r = cli("sql", "SELECT status FROM runs", env=env, timeout=60)
            if r.returncode == 0 and "running" in r.stdout:
                seen_running = True
                break
            time.sleep(0.2)
        assert seen_running, "never read the database while the run was in progress"
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0
    assert "done" in cli("sql", "SELECT status FROM runs", env=env).stdout


def test_second_run_exits_4(env: dict[str, str], tmp_path: Path) -> None:
    from filelock import FileLock

    with FileLock(str(tmp_path / "lb.duckdb") + ".lock"):  # as a running `harness run` holds it
        r = cli("run", "--all", env=env)
    assert r.returncode == 4 and "another harness run is writing" in r.stderr
