"""The Ray executor on a real local Ray cluster (2 CPUs, started here): same leaderboard as the local loop,
a worker killed mid-job is retried, a raising job is stored failed, Ctrl-C and a killed driver leave only
whole jobs and resume. Skipped when Ray is not installed (``pip install 'harness[ray]'``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.factory import ExtractionOptions, Factory
from harness.plan import make_plan
from harness.plugins import build_catalog, make_manager
from harness.runner import Runner
from harness.settings import load_settings
from harness.store import Store
from tests.fixtures import algonauts_folder
from tests.helpers import HelperPlugins, plugin_site

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'harness[ray]')")

from harness.executors.ray_cluster import RayExecutor  # noqa: E402  (needs ray)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray instance for the module (its start costs ~10 s here); workers import ``tests.helpers``."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *([old] if old else [])])
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def registry(tmp: Path) -> dict:
    algo = algonauts_folder(tmp / "algo", n=12, n_sub=3)
    rdms = dict(np.load(algo / "rdms.npz"))
    rdms["EVC"][0, 1, 2] = rdms["EVC"][0, 2, 1] = np.nan  # the rsa jobs raise: stored failed with one line
    np.savez(algo / "rdms.npz", **rdms)
    ridge = {"alphas": [1.0, 100.0, 10000.0], "pool": 2}
    return {
        "plugin_entries": False,
        "backbones": {"tiny": {"plugin": "tiny_cnn_test", "random_init": True},
                      "tiny4": {"plugin": "tiny_cnn_test", "random_init": True, "args": {"width": 4}}},
        "heads": {"ridge": {"plugin": "ridge", "args": ridge},
                  "gated": {"plugin": "gated_ridge_test", "args": {**ridge, "gate": str(tmp / "gate")}},
                  "rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"pearson": {"plugin": "pearson", "args": {"n_boot": 20}},
                    "r2": {"plugin": "rsa_r2", "args": {"n_boot": 20}}},
        "datasets": {
            "syn": {"plugin": "synthetic_voxels",
                    "args": {"backbone": "tiny", "n_stimuli": 40, "voxels_per_roi": 4, "n_subjects": 2,
                             "image_size": 32, "snr": 4.0}},
            "algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}},
        },
    }


def factory(tmp: Path) -> Factory:
    path = tmp / "registry.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(registry(tmp)))
    catalog = build_catalog(*make_manager(extra_plugins=[HelperPlugins()]))
    settings = load_settings().with_overrides(registry=path, home=tmp / "home")
    return Factory.open(settings, catalog=catalog, registry=path,
                        extraction=ExtractionOptions())  # the CLI's defaults: same job ids from both


def tables(db: Path) -> dict[str, pd.DataFrame]:
    """Everything a run leaves that must not depend on where it ran (not run ids, wall times, timestamps)."""
    s = Store(db)
    q = {"jobs": "SELECT job_id, backbone, head, dataset, subject, status, error, tokens_key, weights_digest, "
                 "n_excluded, config::VARCHAR AS config FROM jobs",
         "scores": "SELECT * EXCLUDE (extra), extra::VARCHAR AS extra FROM scores",
         "selections": "SELECT * FROM selections", "unit_scores": "SELECT * FROM unit_scores",
         "leaderboard": "SELECT * FROM leaderboard"}
    out = {}
    for name, sql in q.items():
        df = s.query(sql)
        out[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
    return out


def assert_same(a: Path, b: Path) -> None:
    ta, tb = tables(a), tables(b)
    for name in ta:  # the stored rows bit for bit; the view's avg()/any_value() depend on row order in the file
        exact = name != "leaderboard"
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=exact, rtol=1e-12, obj=name)
    jobs = ta["jobs"]
    assert len(jobs) == jobs["job_id"].nunique() == 10  # no duplicate or missing job
    assert len(ta["scores"]) > 0


def driver_env(tmp: Path, db: Path) -> dict[str, str]:
    """Environment of a `harness run` driver in its own process: this test's registry, home and database, the
    test plugins visible through an entry point (tests.helpers.plugin_site), no HARNESS_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(PYTHONPATH=os.pathsep.join([str(plugin_site(tmp / "site")), str(REPO)]), HF_HUB_OFFLINE="1",
               HARNESS_REGISTRY=str(tmp / "registry.yaml"), HARNESS_HOME=str(tmp / "home"), HARNESS_DB=str(db),
               HARNESS_CONFIG=str(tmp / "none.toml"))
    return env


def started(gate: Path) -> list[int]:
    files = sorted(gate.glob("started-*"), key=lambda p: int(p.name.split("-")[2]))
    return [int(p.read_text()) for p in files]


def wait_for(cond, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The reference: the same plan through the local loop (gate open from the start)."""
    tmp = tmp_path_factory.mktemp("ray_plan")
    (tmp / "gate").mkdir()
    (tmp / "gate" / "go").touch()
    f = factory(tmp)
    summary = Runner(f, Store(tmp / "local.duckdb")).run(make_plan(f))
    assert summary.done == 8 and len(summary.failed) == 2
    (tmp / "gate" / "go").unlink()
    for p in (tmp / "gate").glob("started-*"):
        p.unlink()
    return tmp, tmp / "local.duckdb"


def test_worker_killed_mid_job_is_retried_and_matches_local(cluster: str, local_run: tuple[Path, Path]) -> None:
    tmp, local_db = local_run
    gate = tmp / "gate"
    killed: list[int] = []

    def killer() -> None:  # kill -9 the first worker that reaches the gated head, then let the rest through
        wait_for(lambda: started(gate), what="a worker to reach the gated head")
        pid = started(gate)[0]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        (gate / "go").touch()

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    f = factory(tmp)
    db = tmp / "ray.duckdb"
    summary = Runner(f, Store(db), executor=RayExecutor(cpus_per_job=1)).run(make_plan(f))
    th.join(5)
    assert killed and not alive(killed[0])
    pids = started(gate)
    assert pids.count(killed[0]) == 1 and len(pids) >= 5  # 4 gated jobs, one of them attempted twice
    assert summary.done == 8 and len(summary.failed) == 2
    assert_same(local_db, db)
    err = Store(db).query("SELECT DISTINCT error FROM jobs WHERE status = 'failed'")["error"].tolist()
    assert len(err) == 1 and "non-finite" in err[0] and "\n" not in err[0]
    (gate / "go").unlink()


def test_killed_driver_and_ctrl_c_leave_whole_jobs_and_resume(cluster: str, local_run: tuple[Path, Path]) -> None:
    """A driver killed with -9 (its own process, joined to the cluster), then a resumed run interrupted by Ctrl-C
    while both workers are inside a job, then a resume to the end: the local leaderboard, bit for bit."""
    tmp, local_db = local_run
    gate = tmp / "gate"
    for p in gate.glob("started-*"):
        p.unlink()
    db = tmp / "resumed.duckdb"
    # the driver: `harness run --all --executor ray --address HOST:PORT` in its own process, joining the cluster;
    # the test plugins are visible to it through an entry point (tests.helpers.plugin_site)
    env = driver_env(tmp, db)
    drv = subprocess.Popen([sys.executable, "-m", "harness", "run", "--all", "--executor", "ray", "--address", cluster],
                           cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:  # the failing jobs come first in the plan: they are committed, then both workers block in the gate
        wait_for(lambda: len(started(gate)) >= 2 or drv.poll() is not None, what="the driver's tasks to start")
        assert drv.poll() is None, drv.stderr.read().decode() if drv.stderr else ""
        wait_for(lambda: db.exists() and len(Store(db).query("SELECT job_id FROM jobs")) == 2,
                 what="the failing jobs to be committed")
    finally:
        drv.kill()
        drv.wait(30)
    s = Store(db)
    (argv, status), = s.query("SELECT argv, status FROM runs").values.tolist()
    assert status == "running" and "--executor ray" in argv  # killed, never finished
    assert s.query("SELECT status, count(*) AS n FROM jobs GROUP BY ALL").values.tolist() == [["failed", 2]]
    wait_for(lambda: not any(alive(p) for p in started(gate)), timeout=60, what="the dead driver's tasks to end")

    for p in gate.glob("started-*"):
        p.unlink()
    f = factory(tmp)
    blocked: list[int] = []

    def interrupt() -> None:  # both workers blocked inside a job: Ctrl-C
        wait_for(lambda: len(started(gate)) >= 2, what="two workers inside the gated head")
        blocked.extend(started(gate))
        os.kill(os.getpid(), signal.SIGINT)

    th = threading.Thread(target=interrupt, daemon=True)
    th.start()
    with pytest.raises(KeyboardInterrupt):
        Runner(f, Store(db), executor=RayExecutor()).run(make_plan(f))
    th.join(5)
    assert s.query("SELECT status FROM runs ORDER BY started_at")["status"].tolist() == ["killed", "interrupted"]  # the resume marked the dead run
    assert s.query("SELECT count(*) AS n FROM jobs WHERE dataset = 'syn'")["n"][0] == 0  # no half group
    # the blocked jobs were interrupted inside their workers (which stay for the next run)
    wait_for(lambda: all((gate / f"cancelled-{p}").exists() for p in blocked), timeout=30, what="cancellation")

    (gate / "go").touch()
    summary = Runner(f, Store(db), executor=RayExecutor()).run(make_plan(f))
    assert summary.done == 8
    assert_same(local_db, db)
    (gate / "go").unlink()
