"""The data-scaling axis as data: `train_subset` dataset entries and the `data_scaling` view.

Checked against independent references: subsamples are nested and leave the test set alone;
the view's CI is the t interval of the mean over seeds (scipy), its share of full data a ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.errors import DataError
from harness.store import Store
from tests.test_datasets_synthetic import syn, tiny_factory


def _subsets(tmp_path: Path, sizes: tuple[int, ...], seeds: int = 3) -> dict:
    ds = {"brain": syn(n_stimuli=60, n_subjects=2, voxels_per_roi=3)}
    for n in sizes:
        ds[f"brain_n{n}"] = {"plugin": "train_subset", "args": {"dataset": "brain", "n_train": n, "seeds": seeds}}
    ds["brain_one"] = {"plugin": "train_subset", "args": {"dataset": "brain", "n_train": 10, "subjects": ["sub02"]}}
    ds["brain_big"] = {"plugin": "train_subset", "args": {"dataset": "brain", "n_train": 999}}
    ds["brain_bad"] = {"plugin": "train_subset", "args": {"dataset": "brain", "n_train": 10, "subjects": ["sub09"]}}
    return ds


def test_subsamples_are_nested_seeded_and_keep_the_test_set(tmp_path: Path) -> None:
    f = tiny_factory(tmp_path, _subsets(tmp_path, (10, 20)))
    base = f.dataset("brain").targets("sub01")
    small, large = f.dataset("brain_n10"), f.dataset("brain_n20")
    assert small.subjects() == ["sub01@seed0", "sub01@seed1", "sub01@seed2", "sub02@seed0", "sub02@seed1", "sub02@seed2"]
    assert small.stimuli().digest == f.dataset("brain").stimuli().digest  # the token cache is shared
    assert small.digest() != large.digest()
    picks = []
    for seed in range(3):
        s, lg = small.targets(f"sub01@seed{seed}"), large.targets(f"sub01@seed{seed}")
        assert len(s.train_idx) == 10 and len(lg.train_idx) == 20
        assert set(s.train_idx) <= set(lg.train_idx) <= set(base.train_idx)  # nested, inside the training set
        np.testing.assert_array_equal(s.test_idx, base.test_idx)  # test set fixed
        np.testing.assert_array_equal(s.responses, base.responses)
        picks.append(tuple(s.train_idx))
    assert len(set(picks)) == 3  # seeds draw different subsets
    assert f.dataset("brain_one").subjects() == ["sub02@seed0", "sub02@seed1", "sub02@seed2"]


def test_bad_sizes_and_subjects_fail_with_one_line(tmp_path: Path) -> None:
    f = tiny_factory(tmp_path, _subsets(tmp_path, (10,)))
    with pytest.raises(DataError, match="n_train 999 exceeds the .* training stimuli of 'brain'"):
        f.dataset("brain_big").targets("sub01@seed0")
    with pytest.raises(DataError, match="unknown subject 'sub01@seed7'"):
        f.dataset("brain_n10").targets("sub01@seed7")
    with pytest.raises(DataError, match=r"args.subjects \['sub09'\] not in 'brain'"):
        f.dataset("brain_bad").subjects()
    with pytest.raises(DataError, match="unknown subject 'sub01@seed0'"):  # not among the kept subjects
        f.dataset("brain_one").targets("sub01@seed0")


def _job(i: int, head: str, n: int, subject: str, score: float) -> tuple[dict, list[dict]]:
    job = {"job_id": f"j{i}", "run_id": "r", "backbone": "net", "head": head, "dataset": f"brain_n{n}",
           "subject": subject, "status": "done", "error": None, "wall_s": 1.0,
           "config": {"dataset": {"plugin": "train_subset", "args": {"dataset": "brain", "n_train": n}}},
           "random_init": False, "weights_digest": None, "tokens_key": None, "n_excluded": 0,
           "started_at": None, "finished_at": None}
    row = {"job_id": f"j{i}", "metric": "pearson", "roi": "all", "subject": subject, "raw": score, "ceiling": None,
           "normalised": None, "ci_low": None, "ci_high": None, "n": 10, "p_value": None, "extra": {}}
    return job, [row]


def test_view_gives_mean_t_interval_and_share_of_full(tmp_path: Path) -> None:
    store = Store(tmp_path / "lb.duckdb")
    store.migrate()
    rng = np.random.default_rng(0)
    truth: dict[tuple[str, int], list[float]] = {}
    i = 0
    for head in ("ft", "ridge"):
        for n, seeds in ((10, 3), (30, 4), (90, 1)):
            for s in range(seeds):
                v = float(rng.uniform(0.1, 0.9))
                truth.setdefault((head, n), []).append(v)
                store.write_job(*_job(i, head, n, f"sub01@seed{s}", v), [])
                i += 1
    df = store.query("SELECT * FROM data_scaling ORDER BY head, n_train")
    assert len(df) == 6
    for row in df.itertuples():
        vals = np.array(truth[(row.head, row.n_train)])
        assert row.dataset == "brain" and row.n_jobs == len(vals)
        assert row.score == pytest.approx(vals.mean())
        if len(vals) > 1:
            half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
            assert row.ci == pytest.approx(half, rel=1e-3)
        else:
            assert np.isnan(row.ci)
        assert row.share_of_full == pytest.approx(vals.mean() / np.mean(truth[(row.head, 90)]))
