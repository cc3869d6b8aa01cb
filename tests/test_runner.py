"""The runner end to end on small data: resume, failures, locking, read-only SQL, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataError, QueryError, RunLockedError, StoreError
from harness.plan import make_plan
from harness.runner import Runner
from harness.store import Store
from tests.fixtures import algonauts_folder
from tests.helpers import make_factory


def registry(tmp_path: Path) -> dict:
    good = algonauts_folder(tmp_path / "algo")
    return {
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True}},
        "heads": {"ridge": {"plugin": "ridge", "args": {"alphas": [1.0, 100.0, 10000.0], "pool": 3}},
                  "rsa": {"plugin": "rsa", "args": {"pool": 4}}},
        "metrics": {"pearson": {"plugin": "pearson", "args": {"n_boot": 20}},
                    "r2": {"plugin": "rsa_r2", "args": {"n_boot": 50}}},
        "datasets": {
            "syn": {"plugin": "synthetic_voxels",
                    "args": {"backbone": "mnv2_rand", "n_stimuli": 40, "voxels_per_roi": 4, "n_subjects": 2,
                             "image_size": 32, "snr": 4.0}},
            "algo": {"plugin": "algonauts2019", "args": {"root": str(good)}},
        },
    }


def rows(store: Store, sql: str) -> list[tuple]:
    return [tuple(r) for r in store.query(sql).itertuples(index=False)]


@pytest.fixture
def setup(tmp_path: Path, harness_env: Path):
    f = make_factory(registry(tmp_path), tmp_path, batch_size=8, max_grid=8)
    return f, Store(tmp_path / "lb.duckdb")


def test_run_resume_and_determinism(setup, tmp_path: Path) -> None:
    f, store = setup
    plan = make_plan(f)
    # voxel head × voxel dataset and RDM head × RDM dataset only; the crossed pairs are skipped with a reason
    assert sorted((j.head.name, j.dataset.name, j.subject) for j in plan.jobs) == [
        ("ridge", "syn", "sub01"), ("ridge", "syn", "sub02"), ("rsa", "algo", "all")]
    assert any("dataset gives rdms" in s.reason for s in plan.skipped)
    s1 = Runner(f, store).run(plan)
    assert (s1.done, s1.cached, s1.failed) == (3, 0, [])
    n_scores = rows(store, "SELECT count(*) FROM scores")[0][0]
    first = rows(store, "SELECT job_id, metric, roi, subject, raw FROM scores ORDER BY ALL")
    s2 = Runner(f, store).run(make_plan(f))
    assert (s2.done, s2.cached) == (0, 3)
    assert rows(store, "SELECT count(*) FROM scores")[0][0] == n_scores
    # a fresh database reproduces the same numbers exactly (fixed seeds)
    store2 = Store(tmp_path / "again.duckdb")
    Runner(f, store2).run(make_plan(f))
    assert rows(store2, "SELECT job_id, metric, roi, subject, raw FROM scores ORDER BY ALL") == first
    assert rows(store, "SELECT count(*) FROM runs WHERE status = 'done'")[0][0] == 2
    lb = store.query("SELECT * FROM leaderboard")
    assert {"raw", "ceiling", "normalised", "ci_low", "ci_high", "n", "rank"} <= set(lb.columns)
    assert set(lb["dataset"]) == {"syn", "algo"}


def test_failed_job_is_recorded_and_retried(setup, tmp_path: Path) -> None:
    f, store = setup
    bad = np.load(tmp_path / "algo" / "rdms.npz")
    evc = bad["EVC"].copy()
    evc[0, 1, 2] = evc[0, 2, 1] = np.nan
    np.savez(tmp_path / "algo" / "rdms.npz", EVC=evc, IT=bad["IT"])
    summary = Runner(f, store).run(make_plan(f))
    assert summary.done == 2 and len(summary.failed) == 1
    (status, err), = rows(store, "SELECT status, error FROM jobs WHERE dataset = 'algo'")
    assert status == "failed" and "ROI 'EVC'" in err and "non-finite" in err and "\n" not in err
    np.savez(tmp_path / "algo" / "rdms.npz", EVC=bad["IT"], IT=bad["IT"])  # fixed data → new digest → reruns
    summary = Runner(f, store).run(make_plan(f))
    assert summary.done == 1 and not summary.failed
    assert rows(store, "SELECT count(*) FROM jobs WHERE status = 'failed'")[0][0] == 1  # old config's record kept


def test_interrupt_keeps_whole_jobs_and_resumes(setup) -> None:
    f, store = setup
    seen = []

    def stop_after_first(label: str, done: int, total: int) -> None:
        if done:
            seen.append(label)
            if len(seen) == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Runner(f, store, progress=stop_after_first).run(make_plan(f))
    assert rows(store, "SELECT count(*) FROM jobs")[0][0] == 1
    assert rows(store, "SELECT status FROM runs")[0][0] == "interrupted"
    s = Runner(f, store).run(make_plan(f))
    assert (s.done, s.cached) == (2, 1)
    assert rows(store, "SELECT count(*), count(DISTINCT job_id) FROM jobs")[0] == (3, 3)


def test_second_run_on_same_db_is_refused(setup) -> None:
    f, store = setup
    with Store(store.path).run_lock(), pytest.raises(RunLockedError, match="another harness run is writing"):
        Runner(f, store).run(make_plan(f, heads=["rsa"]))


def test_unwritable_database_path(setup, tmp_path: Path) -> None:
    f, _ = setup
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=str(blocker / "sub" / "lb.duckdb")):
        Runner(f, Store(blocker / "sub" / "lb.duckdb")).run(make_plan(f, heads=["rsa"]))


def test_sql_is_read_only(setup) -> None:
    f, store = setup
    Runner(f, store).run(make_plan(f, heads=["rsa"]))
    for bad in ("DELETE FROM jobs", "SELECT 1; DROP TABLE jobs", "DROP TABLE jobs", "INSERT INTO runs VALUES (1)",
                "WITH x AS (SELECT 1) DELETE FROM jobs"):
        with pytest.raises(QueryError):
            store.query(bad)
    assert rows(store, "SELECT count(*) FROM jobs")[0][0] == 1


@pytest.mark.parametrize(
    "mutate, match",
    [
        ("count", "RDM size 12 but 11 stimuli"),
        ("square", "expected subjects×N×N"),
        ("asym", "not symmetric"),
        ("corrupt", "corrupt or unreadable image"),
    ],
)
def test_bad_rdm_inputs_fail_with_one_line(setup, tmp_path: Path, mutate: str, match: str) -> None:
    f, store = setup
    root = tmp_path / "algo"
    z = dict(np.load(root / "rdms.npz"))
    if mutate == "count":
        (root / "images" / "image_12.jpg").unlink()
    elif mutate == "square":
        np.savez(root / "rdms.npz", EVC=z["EVC"][:, :, :-1], IT=z["IT"])
    elif mutate == "asym":
        z["IT"][1, 0, 3] += 0.5
        np.savez(root / "rdms.npz", **z)
    elif mutate == "corrupt":
        (root / "images" / "image_03.jpg").write_bytes(b"not a jpeg")
    Runner(f, store).run(make_plan(f, heads=["rsa"]))
    (status, err), = rows(store, "SELECT status, error FROM jobs")
    assert status == "failed" and "\n" not in err
    assert match in err
    if mutate == "corrupt":
        assert "image_03.jpg" in err


def test_voxel_bad_inputs(setup) -> None:
    import pandas as pd

    from harness.contracts import VoxelTargets

    vox = pd.DataFrame({"voxel_id": ["a", "b"], "roi": ["V1", "V1"]})
    ok = np.zeros((6, 2), np.float32)
    t = VoxelTargets(responses=ok, train_idx=np.arange(4), test_idx=np.arange(4, 6), voxels=vox)
    t.validate(6, "ds")
    with pytest.raises(DataError, match="ds: 6 response rows but 7 stimuli"):
        t.validate(7, "ds")
    nan = ok.copy()
    nan[2, 1] = np.inf
    with pytest.raises(DataError, match="1 non-finite"):
        VoxelTargets(responses=nan, train_idx=np.arange(4), test_idx=np.arange(4, 6), voxels=vox).validate(6, "ds")
    with pytest.raises(DataError, match="overlap"):
        VoxelTargets(responses=ok, train_idx=np.arange(5), test_idx=np.arange(4, 6), voxels=vox).validate(6, "ds")
