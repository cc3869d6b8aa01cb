"""Metrics end to end: every metric fills every compatible job, and the leaderboard views answer their questions.

Two tiny random CNNs (test-only) read a synthetic brain generated from the first, and a small
Algonauts-layout RDM set; the views are checked against pandas recomputations from the raw tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.factory import ExtractionOptions, Factory
from harness.hookspecs import hookimpl
from harness.plan import make_plan
from harness.plugins import build_catalog, make_manager
from harness.runner import Runner
from harness.settings import load_settings
from harness.specs import (
    LAYER_WEIGHTS,
    MODEL_RDMS,
    VOXEL_PREDICTIONS,
)
from harness.store import Store
from tests.fixtures import algonauts_folder
from tests.helpers import TinyCNN

REPO = Path(__file__).resolve().parents[1]


class _Plugins:
    @hookimpl
    def harness_plugins(self) -> list[type]:
        return [TinyCNN]


def _registry(tmp: Path) -> dict:
    return {
        "backbones": {
            "net_a": {"plugin": "tiny_cnn_test", "args": {"width": 8}, "random_init": True,
                      "meta": {"params_m": 0.01, "training_data": "none", "n_train_images": 0}},
            "net_b": {"plugin": "tiny_cnn_test", "args": {"width": 16}, "random_init": False,
                      "meta": {"params_m": 0.04, "training_data": "toy", "n_train_images": 100}},
        },
        "heads": {"ridge": {"plugin": "ridge", "args": {"alphas": [1.0, 10.0, 100.0, 1000.0, 10000.0], "pool": 4}},
                  "rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"pearson": {"plugin": "pearson", "args": {"n_boot": 50}},
                    "algonauts_r2": {"plugin": "rsa_r2", "args": {"n_boot": 50, "n_perm": 50}},
                    "hierarchy": {"plugin": "hierarchy_slope", "args": {"n_boot": 200}},
                    "selector_confidence": {"plugin": "selector_confidence", "args": {"n_boot": 50}}},
        "datasets": {
            "syn": {"plugin": "synthetic_voxels",
                    "args": {"backbone": "net_a", "n_stimuli": 200, "image_size": 32, "n_subjects": 2,
                             "voxels_per_roi": 15, "snr": 8.0, "n_repeats": 2, "seed": 1}},
            "algo": {"plugin": "algonauts2019", "args": {"root": str(algonauts_folder(tmp / "algo", n=14, n_sub=4))}},
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Factory, Store]:
    tmp = tmp_path_factory.mktemp("metrics_views")
    path = tmp / "registry.yaml"
    path.write_text(yaml.safe_dump(_registry(tmp)))
    catalog = build_catalog(*make_manager(extra_plugins=[_Plugins()]))
    settings = load_settings().with_overrides(registry=path, home=tmp / "home", db=tmp / "lb.duckdb")
    f = Factory.open(settings, catalog=catalog, extraction=ExtractionOptions(batch_size=64, max_grid=16))
    store = Store(tmp / "lb.duckdb")
    # plugin registry fragments add more zoo entries; this run is only the ones defined above
    plan = make_plan(f, backbones=["net_a", "net_b"], heads=["ridge", "rsa"], datasets=["syn", "algo"],
                     metrics=["pearson", "algonauts_r2", "hierarchy", "selector_confidence"])
    summary = Runner(f, store).run(plan)
    assert summary.failed == [] and summary.done == 6  # 2 nets × (2 synthetic subjects + 1 RDM job)
    return f, store


def test_every_metric_fills_every_job(run) -> None:
    _, store = run
    got = store.query("SELECT j.head, j.backbone, j.subject, list(DISTINCT s.metric ORDER BY s.metric) AS m "
                      "FROM jobs j JOIN scores s USING (job_id) GROUP BY ALL")
    selector = ["hierarchy", "hierarchy.depth", "hierarchy.intercept", "hierarchy.r2", "selector_confidence"]
    for row in got.itertuples():
        expected = {"ridge": ["pearson", "pearson.mean"], "rsa": ["algonauts_r2"]}[row.head] + selector
        assert sorted(row.m) == sorted(expected), row
    # every voxel's r is stored once per job (for the cross-job "max" view)
    n = store.query("SELECT count(*) AS n FROM unit_scores WHERE metric = 'pearson'").n[0]
    assert n == 2 * 2 * 4 * 15


def test_planted_hierarchy_slope_is_recovered(run) -> None:
    """The brain was generated from net_a: ROI k reads layer k of 4 (levels 0..3 → depths 0, 1/3, 2/3, 1).

    Planted slope in the metric's units (depth per normalised level) = depth_range span = 1; ground truth
    from the dataset's accessor gives the same number through the metric's own function.
    """
    f, store = run
    from harness_metrics.hierarchy import hierarchy_slope, unit_levels

    ds = f.dataset("syn")
    gt = ds.ground_truth("sub01")
    k, n_layers = len(gt.roi_names), len(gt.layers)
    planted = gt.hierarchy_slope * (k - 1) / (n_layers - 1)
    assert planted == pytest.approx(1.0)
    truth_fit = hierarchy_slope(gt.layer_weights, unit_levels(list(gt.rois), gt.roi_level))
    assert truth_fit.slope == pytest.approx(planted, abs=1e-9) and truth_fit.r2 == pytest.approx(1.0)
    h = store.query("SELECT * FROM hierarchy WHERE dataset = 'syn' AND backbone = 'net_a'")
    assert len(h) == 1
    print("recovered slope (net_a, ridge):", h.slope[0], "CI", h.slope_ci_low[0], h.slope_ci_high[0], "R²", h.r2[0])
    assert h.slope[0] == pytest.approx(planted, abs=0.15)
    assert h.pooled_slope[0] == pytest.approx(planted, abs=0.15)
    assert h.params_m[0] == 0.01 and h.training_data[0] == "none" and h.n_subjects[0] == 2


def test_roi_max_view_matches_a_pandas_recomputation(run) -> None:
    _, store = run
    u = store.query("SELECT j.backbone, j.random_init, j.subject, u.roi, u.unit, u.value FROM unit_scores u "
                    "JOIN jobs j USING (job_id) WHERE u.metric = 'pearson'")
    mx = u[~u.random_init].groupby(["subject", "roi", "unit"]).value.max().rename("mx")
    u = u.join(mx, on=["subject", "roi", "unit"])
    view = store.query("SELECT * FROM roi_max WHERE dataset = 'syn'")
    assert set(view.roi) == {"V1", "V2", "V4", "IT", "all"}
    for (bb, roi), g in list(u.groupby(["backbone", "roi"])) + [((bb, "all"), g) for bb, g in u.groupby("backbone")]:
        row = view[(view.backbone == bb) & (view.roi == roi)].iloc[0]
        assert row.rss == pytest.approx(np.sqrt(((g.mx - g.value) ** 2).sum()))
        assert row.mean_r == pytest.approx(g.value.mean()) and row.max_mean_r == pytest.approx(g.mx.mean())
        assert row.n_voxels == len(g)
    # only net_b is pretrained, so it *is* the max; the random-init control is listed with its distance
    assert (view[view.backbone == "net_b"].rss == 0).all() and (view[view.backbone == "net_a"].rss > 0).all()


def test_leaderboard_view_ranks_and_carries_cis(run) -> None:
    _, store = run
    lb = store.query("SELECT * FROM leaderboard")
    raw = store.query("SELECT j.backbone, s.raw, s.normalised FROM scores s JOIN jobs j USING (job_id) "
                      "WHERE s.metric = 'pearson.mean' AND s.roi = 'V1'")
    for bb, g in raw.groupby("backbone"):
        row = lb[(lb.metric == "pearson.mean") & (lb.roi == "V1") & (lb.backbone == bb)].iloc[0]
        assert row.raw == pytest.approx(g.raw.mean()) and row.normalised == pytest.approx(g.normalised.mean())
        assert row.n_subjects == 2 and row.ci_low <= row.raw <= row.ci_high
    r2 = lb[(lb.metric == "algonauts_r2") & (lb.roi == "mean")]
    assert len(r2) == 2 and r2.perm_p.notna().all() and r2.norm_ci_low.notna().all()
    for _, g in lb.groupby(["dataset", "roi", "metric"]):
        assert sorted(g["rank"]) == list(range(1, len(g) + 1)) or g.raw.duplicated().any()


def test_scaling_question_is_one_query(run) -> None:
    """README's worked query: slope against log model size over the hierarchy view."""
    _, store = run
    df = store.query("SELECT dataset, head, count(*) AS n, regr_slope(slope, ln(params_m)) AS slope_per_log_size "
                     "FROM hierarchy GROUP BY ALL ORDER BY ALL")
    h = store.query("SELECT dataset, head, params_m, slope FROM hierarchy")
    for row in df.itertuples():
        g = h[(h.dataset == row.dataset) & (h["head"] == row.head)]
        assert row.n == 2
        assert row.slope_per_log_size == pytest.approx(np.polyfit(np.log(g.params_m), g.slope, 1)[0])


def test_selector_metrics_attach_to_every_layer_weight_head_of_the_default_zoo(monkeypatch) -> None:
    """Item 10: `harness run --all` pairs hierarchy + selector_confidence with every head producing layer weights."""
    monkeypatch.setenv("HARNESS_DATA_ROOT", str(REPO.parent / "shared" / "data"))
    f = Factory.open(load_settings().with_overrides(registry=REPO / "registry.yaml"))
    plan = make_plan(f, backbones=["mobilenet_v2_random"])
    heads = {j.head.name for j in plan.jobs}
    assert "ridge" in heads
    for j in plan.jobs:
        produces = f.catalog.get("head", j.head.plugin).spec.produces
        names = {m.name for m in j.metrics}
        if LAYER_WEIGHTS in produces:
            assert {"hierarchy", "selector_confidence"} <= names, j.label
        if VOXEL_PREDICTIONS in produces:
            assert "pearson" in names, j.label
        if MODEL_RDMS in produces:
            assert "algonauts_r2" in names, j.label


def test_views_are_created_after_the_views_they_read(tmp_path) -> None:
    """Inside the migration's transaction a failed CREATE aborts everything, so order must be right first time;
    names in comments (which may mention each other) must not create false cycles."""
    import duckdb

    from harness.store import _create_views, _view_order

    views = {"a_top": "-- built on z_base, see also b_mid\nSELECT * FROM b_mid",
             "b_mid": "-- unlike a_top\nSELECT x + 1 AS x FROM z_base", "z_base": "SELECT 1 AS x"}
    assert _view_order(views) == ["z_base", "b_mid", "a_top"]
    con = duckdb.connect(str(tmp_path / "v.duckdb"))
    con.execute("BEGIN")
    _create_views(con, views)
    con.execute("COMMIT")
    assert con.sql("SELECT x FROM a_top").fetchall() == [(2,)]
