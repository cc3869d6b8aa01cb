"""The process-pool executor: the same leaderboard as the local loop, bit for bit; a worker killed with -9
fails its unit's jobs with a one-line error (no partial rows) and the rerun completes them."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from harness.executors.processes import ProcessExecutor
from harness.plan import make_plan
from harness.runner import Runner
from harness.store import Store
from tests.test_executor_ray import (  # noqa: F401 (local_run is a fixture)
    alive,
    assert_same,
    driver_env,
    factory,
    local_run,
    started,
    wait_for,
)


def test_pool_matches_local_and_a_killed_worker_fails_then_resumes(local_run: tuple[Path, Path]) -> None:
    tmp, local_db = local_run
    gate = tmp / "gate"
    for p in gate.glob("started-*"):
        p.unlink()
    killed: list[int] = []

    def killer() -> None:
        wait_for(lambda: started(gate), what="a worker to reach the gated head")
        pid = started(gate)[0]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    f = factory(tmp)
    db = tmp / "pool.duckdb"
    first = Runner(f, Store(db), executor=ProcessExecutor(workers=2)).run(make_plan(f))
    th.join(5)
    assert killed and not alive(killed[0])
    errors = Store(db).query("SELECT DISTINCT error FROM jobs WHERE status = 'failed'")["error"].tolist()
    assert any("worker process died" in e and "\n" not in e for e in errors), errors
    assert first.done < 8
    (gate / "go").touch()
    try:
        again = Runner(f, Store(db), executor=ProcessExecutor(workers=2)).run(make_plan(f))
    finally:
        (gate / "go").unlink()
    assert again.cached == first.done and again.done + first.done == 8
    assert_same(local_db, db)


def test_processes_is_an_executor_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.executors.options import make_executor, resolve
    from harness.settings import load_settings

    monkeypatch.setenv("HARNESS_EXECUTOR", "processes")
    o = resolve(load_settings(), cpus_per_job=2)
    ex = make_executor(o)
    assert isinstance(ex, ProcessExecutor) and ex.threads == 2


def test_workers_exit_when_the_driver_is_killed(local_run: tuple[Path, Path]) -> None:
    """`harness run --all --executor processes` killed with -9 while its workers wait inside a job: the workers
    exit by themselves (they would otherwise compute rows nobody writes), and the database holds whole jobs."""
    import subprocess
    import sys
    import time

    tmp, _ = local_run
    gate = tmp / "gate"
    for p in gate.glob("started-*"):
        p.unlink()
    db = tmp / "killed.duckdb"
    env = driver_env(tmp, db)
    drv = subprocess.Popen([sys.executable, "-m", "harness", "run", "--all", "--executor", "processes"],
                           cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(started(gate)) >= 1 or drv.poll() is not None, what="a worker to reach the gate")
        assert drv.poll() is None
        workers = started(gate)
    finally:
        drv.kill()
        drv.wait(30)
    deadline = time.monotonic() + 20
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in workers), "workers outlived their driver"
    if db.exists():
        jobs = Store(db).query("SELECT job_id, status FROM jobs")
        assert jobs["job_id"].is_unique
