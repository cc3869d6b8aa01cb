"""End to end (issue 10): `harness run` on a joined dataset of unequal sizes with a held-out protocol completes
with CIs, records the protocol, keeps the predicted RDMs, and `harness export` round-trips to the devkit's number.

Two fixture image sets of 12 and 18 images in the Algonauts 2019 layout (a ``cichy78``-style third size is
covered in test_rdm_protocol.py); the tiny CNN of the aggregation tests is the backbone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import loadmat
from typer.testing import CliRunner

from harness.errors import DataError
from harness.factory import Factory
from harness.plan import make_plan
from harness.plugins import build_catalog, make_manager
from harness.registry import load_registry
from harness.runner import Runner
from harness.settings import load_settings
from harness.store import Store
from tests.test_aggregation import _TestPlugins
from tests.test_datasets_algonauts2019 import cichy_fixture
from tests.test_rdm_protocol import devkit_ceiling, devkit_r2


@pytest.mark.slow
def test_transfer_and_image_folds_run_record_and_export(tmp_path: Path, harness_env: Path) -> None:
    roots = {"92": str(cichy_fixture(tmp_path / "s12", n=12, n_sub=4, seed=1, meg=False)),
             "118": str(cichy_fixture(tmp_path / "s18", n=18, n_sub=4, seed=2, meg=False))}
    reg = {"backbones": {"tiny": {"plugin": "tiny_cnn_test", "random_init": True}},
           "heads": {"rsa": {"plugin": "rsa"},
                     "agg": {"plugin": "stage_aggregation",
                             "args": {"epochs": 1, "n_crops": 2, "batch_size": 8, "n_boot": 20, "grid": 2}}},
           "datasets": {"xfer": {"plugin": "algonauts2019",
                                 "args": {"sets": ["118", "92"], "roots": roots, "predict": {"92": ["118"]}}},
                        "folds": {"plugin": "algonauts2019", "args": {"set": "118", "root": roots["118"]}}},
           "metrics": {"algonauts_r2": {"plugin": "rsa_r2", "args": {"n_boot": 30, "n_perm": 20,
                                                                      "ci_over": "stimuli"}}}}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"plugin_entries": False, **reg}))
    cat = build_catalog(*make_manager(extra_plugins=[_TestPlugins()]))
    settings = load_settings().with_overrides(registry=path)
    f = Factory(catalog=cat, registry=load_registry(cat, path, settings), settings=settings)
    plan = make_plan(f, backbones=["tiny"], heads=["rsa", "agg"], datasets=["xfer", "folds"], metrics=["algonauts_r2"])
    store = Store(tmp_path / "lb.duckdb")
    summary = Runner(f, store).run(plan)
    assert summary.done == 4 and not summary.failed, summary.failed

    jobs = store.query("SELECT job_id, head, dataset, images, subjects, model_rdms FROM jobs ORDER BY head, dataset")
    assert set(jobs["images"]) == {"held_out"}
    assert dict(zip(jobs["dataset"], jobs["subjects"], strict=False)) == {"folds": "seen", "xfer": "held_out"}
    for digest in jobs["model_rdms"]:
        assert (settings.home / "model_rdms" / f"{digest}.npz").is_file()
    scores = store.query("SELECT j.head, j.dataset, s.roi, s.raw, s.ceiling, s.normalised, s.ci_low, s.ci_high, "
                         "s.extra ->> 'pairs_per_fold' AS pairs FROM scores s JOIN jobs j USING (job_id) "
                         "WHERE s.subject = ''")
    xfer = scores[scores.dataset == "xfer"]
    assert set(xfer.roi) == {"92/EVC", "92/IT", "mean"}  # the training set is not scored
    assert xfer.ci_low.notna().all() and xfer.ci_high.notna().all()
    assert set(scores[(scores.dataset == "folds") & (scores.roi == "IT")].pairs) == {"[15,15,15]"}
    lb = store.query("SELECT dataset, roi, head, images, rank FROM leaderboard WHERE metric = 'algonauts_r2'")
    assert set(lb.images) == {"held_out"}

    # export → the devkit's formula on the written .mat → the harness's numbers
    cli = CliRunner()
    from harness.cli import app

    base = ["--db", str(tmp_path / "lb.duckdb"), "--home", str(settings.home)]
    from harness_datasets.algonauts2019 import read_fmri_rdms

    subj = read_fmri_rdms(Path(roots["92"]), ("EVC", "IT"))
    for head in ("rsa", "agg"):
        out = tmp_path / f"{head}.mat"
        res = cli.invoke(app, [*base, "export", "-b", "tiny", "-H", head, "-d", "xfer", "--set", "92", "-o", str(out)])
        assert res.exit_code == 0, res.output
        mat = loadmat(out)
        for roi in ("EVC", "IT"):
            sub = mat[f"{roi}_RDMs"]
            assert sub.shape == (12, 12)
            row = xfer[(xfer["head"] == head) & (xfer.roi == f"92/{roi}")].iloc[0]
            r2 = devkit_r2(sub, subj[roi])
            assert row.raw == pytest.approx(r2, abs=1e-9)
            assert row.normalised == pytest.approx(100 * r2 / devkit_ceiling(subj[roi]), abs=1e-9)
        npz = tmp_path / f"{head}.npz"
        assert cli.invoke(app, [*base, "export", "-b", "tiny", "-H", head, "-d", "folds", "-o", str(npz)]).exit_code == 0
        with np.load(npz) as z:
            assert len([k for k in z.files if k.startswith("test_0_")]) == 3
    # a fold job's RDM is defined only within its blocks: no submission, a one-line reason
    res = cli.invoke(app, [*base, "export", "-b", "tiny", "-H", "rsa", "-d", "folds", "-o", str(tmp_path / "x.mat")])
    assert isinstance(res.exception, DataError) and "fold blocks" in str(res.exception)
