"""The executor seam without Ray: how jobs become units, how options resolve, the dry-run task graph,
the batch-size rule for GPU workers, and the token cache's lost-race rename."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from harness.cache import TokenCache
from harness.errors import HarnessError
from harness.executors import options
from harness.executors.local import LocalExecutor
from harness.executors.ray_cluster import RayExecutor
from harness.executors.resources import batch_for_memory
from harness.executors.work import plan_units
from harness.plan import Job
from harness.settings import load_settings
from harness.specs import RegistryEntry
from harness.store import Store
from tests.fixtures import algonauts_folder


def _job(ds: str, bb: str, head: str, subject: str) -> Job:
    e = lambda name, kind: RegistryEntry(name=name, kind=kind, plugin=name, source="test")
    return Job(e(bb, "backbone"), e(head, "head"), e(ds, "dataset"), subject, (), f"{ds}-{bb}-{head}-{subject}", {})


# the planner's order: dataset → head → backbone → subject
JOBS = [_job(ds, bb, h, s) for ds in ("d1", "d2") for h in ("ridge", "rsa") for bb in ("a", "b") for s in ("s1", "s2")]


def test_units_gather_a_dataset_backbone_group_or_keep_the_local_order() -> None:
    gathered = plan_units(JOBS)
    assert [u.uid for u in gathered] == ["d1/a", "d1/b", "d2/a", "d2/b"]
    assert all(len(u.jobs) == 4 and {j.head.name for j in u.jobs} == {"ridge", "rsa"} for u in gathered)
    local = LocalExecutor().units(JOBS)  # neighbouring jobs only: exactly the order the loop always ran
    assert [j for u in local for j in u.jobs] == JOBS
    assert [u.uid for u in local][:3] == ["d1/a", "d1/b", "d1/a#2"]
    split = plan_units(JOBS, split_heads=True)
    assert [(u.uid, u.kind, u.after, len(u.jobs)) for u in split[:3]] == [
        ("d1/a/extract", "extract", None, 0), ("d1/a/ridge", "group", "d1/a/extract", 2),
        ("d1/a/rsa", "group", "d1/a/extract", 2)]
    assert sorted(j.job_id for u in split for j in u.jobs) == sorted(j.job_id for j in JOBS)  # each job once


def test_options_flag_beats_env_beats_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('executor = "ray"\ncpus_per_job = 3\nsplit_heads = true\n')
    monkeypatch.setenv("HARNESS_CONFIG", str(cfg))
    for k in options.KEYS.values():
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    o = options.resolve(s)
    assert (o.executor, o.cpus_per_job, o.gpus_per_job, o.split_heads, o.address) == ("ray", 3.0, 0.0, True, None)
    monkeypatch.setenv("HARNESS_CPUS_PER_JOB", "2")
    monkeypatch.setenv("HARNESS_RAY_ADDRESS", "ray://head:10001")
    o = options.resolve(s)
    assert (o.cpus_per_job, o.address) == (2.0, "ray://head:10001")
    o = options.resolve(s, executor="local", cpus_per_job=4, gpus_per_job=0.5)
    assert (o.executor, o.cpus_per_job, o.gpus_per_job) == ("local", 4.0, 0.5)
    ex = options.make_executor(options.resolve(s, gpus_per_job=1))
    assert isinstance(ex, RayExecutor) and ex.gpus_per_job == 1 and ex.fit_batch
    assert not options.make_executor(options.resolve(s, batch_size_given=True)).fit_batch  # type: ignore[attr-defined]
    # Ray workers decide the device: auto means CUDA exactly when tasks request GPUs
    assert options.device_for(options.resolve(s), "auto") == "cpu"
    assert options.device_for(options.resolve(s, gpus_per_job=1), "auto") == "cuda"
    with pytest.raises(HarnessError, match=r"--device cuda on Ray needs --gpus-per-job > 0"):
        options.device_for(options.resolve(s), "cuda")


@pytest.mark.parametrize(("kw", "env", "msg"), [
    ({"executor": "dask"}, {}, "executor must be one of local, processes, ray, not 'dask'"),
    ({}, {"HARNESS_GPUS_PER_JOB": "one"}, "HARNESS_GPUS_PER_JOB: expected a number, not 'one'"),
    ({"cpus_per_job": -1}, {}, "--cpus-per-job: must be ≥ 0"),
    ({"cpus_per_job": 0}, {}, "--cpus-per-job: a job needs more than 0 CPUs"),
    ({}, {"HARNESS_SPLIT_HEADS": "maybe"}, "HARNESS_SPLIT_HEADS: expected true or false"),
])
def test_bad_options_are_one_line_errors(kw: dict, env: dict, msg: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "none.toml"))
    for k in options.KEYS.values():
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(HarnessError, match=msg.replace("(", r"\(")) as exc:
        options.resolve(load_settings(), **kw)
    assert "\n" not in str(exc.value)


def test_batch_size_fits_free_memory() -> None:
    gib = 1 << 30
    assert batch_for_memory(16 * gib, 100e6) == 64  # 0.6 × 16 GiB / 100 MB = 103 → 64
    assert batch_for_memory(80 * gib, 100e6) == 256  # capped
    assert batch_for_memory(80 * gib, 100e6, ceiling=1000) == 512
    assert batch_for_memory(gib, 2 * gib) == 1  # never below one image
    assert batch_for_memory(gib, 0) == 256


def test_cache_lost_race_keeps_one_whole_entry(tmp_path: Path) -> None:
    """Two workers extract the same key at once on a shared HARNESS_HOME: both finish, one entry remains."""
    cache = TokenCache(tmp_path)
    x = np.arange(24, dtype=np.float16).reshape(2, 3, 2, 2)
    with cache.writer("k", ("l",), 2, {"who": "first"}) as w1:
        with cache.writer("k", ("l",), 2, {"who": "second"}) as w2:
            w2.write(0, "l", x, x[:, :, 0, 0])
        w1.write(0, "l", x, x[:, :, 0, 0])  # the second writer renamed first; this one loses the race
    store = cache.get("k")
    assert store is not None and store.meta["who"] == "second"
    np.testing.assert_array_equal(store.local("l"), x)
    assert sorted(p.name for p in cache.root.iterdir()) == ["k"]  # no temporary folder left behind


def test_dry_run_prints_the_task_graph_with_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.cli import app

    algo = algonauts_folder(tmp_path / "algo", n=10, n_sub=3)
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True}},
        "heads": {"rsa": {"plugin": "rsa", "args": {"pool": 2}}, "rsa4": {"plugin": "rsa", "args": {"pool": 4}}},
        "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 20}}},
        "datasets": {"algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}}},
    }))
    for k in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("HARNESS_EXECUTOR", "ray")
    args = ["--registry", str(reg), "--db", str(tmp_path / "lb.duckdb"), "--home", str(tmp_path / "home"),
            "run", "--all", "--gpus-per-job", "0.5", "--cpus-per-job", "4", "--split-heads", "--dry-run"]
    r = CliRunner().invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = r.output
    assert "task graph (ray): 3 tasks for 2 jobs" in out
    assert "algo/mnv2_rand/extract" in out and "algo/mnv2_rand/rsa4" in out
    assert out.count("CPU=4, GPU=0.5") == 3
    assert not (tmp_path / "lb.duckdb").exists()  # nothing ran


def test_ctrl_c_inside_a_write_commits_the_job_then_interrupts(tmp_path: Path) -> None:
    """A Ctrl-C that lands while the driver commits a job (DuckDB would turn it into 'Query interrupted') is
    held until the transaction has committed, then raised as the KeyboardInterrupt the runner handles."""
    store = Store(tmp_path / "h.duckdb")
    with pytest.raises(KeyboardInterrupt), store.writer() as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        signal.raise_signal(signal.SIGINT)
        con.execute("INSERT INTO t VALUES (1)")
    assert store.query("SELECT x FROM t")["x"].tolist() == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
