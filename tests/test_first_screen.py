"""The first screen (leaderboards/primary_scores.sql + harness.board): primary score per dataset × ROI, the
random-init control beside each pretrained model, secondary metrics only on request, names never cut."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import board
from harness.store import Store

NOW = dt.datetime(2026, 1, 1)


def _entry(plugin: str, args: dict[str, Any], random_init: bool = False) -> dict[str, Any]:
    return {"plugin": plugin, "version": "1", "args": args, "random_init": random_init, "meta": {}}


def _job(store: Store, backbone: str, plugin: str, args: dict[str, Any], random_init: bool, dataset: str,
         scores: dict[tuple[str, str], tuple[float, float | None]], head: str = "ridge") -> None:
    """One finished job with (metric, roi) → (raw, ceiling) rows, shaped as the runner writes it."""
    config = {"backbone": _entry(plugin, args, random_init), "head": _entry(head, {}), "dataset": _entry(dataset, {}),
              "subject": "s1"}
    job_id = f"{backbone}-{dataset}-{head}-{random_init}"
    store.write_job(
        {"job_id": job_id, "run_id": "r", "backbone": backbone, "head": head, "dataset": dataset, "subject": "s1",
         "status": "done", "error": None, "wall_s": 1.0, "config": config, "random_init": random_init,
         "weights_digest": None, "tokens_key": None, "n_excluded": 0, "started_at": NOW, "finished_at": NOW},
        [{"job_id": job_id, "metric": m, "roi": roi, "subject": "", "raw": raw, "ceiling": ceil,
          "normalised": None if ceil is None else 100 * raw / ceil, "ci_low": raw - 0.05, "ci_high": raw + 0.05,
          "n": 10, "p_value": None, "extra": {}} for (m, roi), (raw, ceil) in scores.items()], [])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "lb.duckdb")
    s.migrate()
    s.upsert_entries([
        {"name": "pearson", "kind": "metric", "plugin": "pearson", "plugin_version": "1", "random_init": False,
         "parent": None, "args": {}, "meta": {}, "tags": ["primary"]},
        {"name": "hierarchy", "kind": "metric", "plugin": "hierarchy_slope", "plugin_version": "1",
         "random_init": False, "parent": None, "args": {}, "meta": {}, "tags": []},
    ])
    long = "a_backbone_name_far_too_long_to_fit_a_narrow_column_v2"
    nets = [("net_a", {"arch": "a"}, 0.60), ("net_b", {"arch": "b"}, 0.50), (long, {"arch": "long"}, 0.40)]
    for name, args, r in nets:
        # voxel dataset with a tagged primary metric; the selector statistic scores higher but is not a brain score
        _job(s, name, "tv", args, False, "vox", {("pearson", "V1"): (r, 0.8), ("pearson.mean", "V1"): (r - 0.1, 0.8),
                                                  ("hierarchy.depth", "V1"): (0.9, None)})
        _job(s, f"{name}_random", "tv", args, True, "vox", {("pearson", "V1"): (r / 4, 0.8),
                                                           ("hierarchy.depth", "V1"): (0.95, None)})
        # a dataset none of whose metrics is tagged: falls back to its own rows that carry a ceiling
        _job(s, name, "tv", args, False, "rdm", {("r2", "IT"): (r / 10, 0.2), ("r2.extra", "IT"): (1.0, 0.2),
                                                  ("sel", "IT"): (5.0, None)})
    # a random-init net with no pretrained twin keeps its own row
    _job(s, "only_random", "tv", {"arch": "z"}, True, "vox", {("pearson", "V1"): (0.05, 0.8)})
    return s


def test_first_screen_rows(store: Store) -> None:
    df = board.query_board(store)
    vox = df[df["dataset"] == "vox"]
    assert set(df["metric"]) == {"pearson", "r2"}  # primary only; suffix rows and selector statistics left out
    assert list(vox["backbone"]) == ["net_a", "net_b", "a_backbone_name_far_too_long_to_fit_a_narrow_column_v2",
                                     "only_random"]
    assert list(vox["rank"]) == [1, 2, 3, 4]
    a = vox.iloc[0]
    assert a["control"] == "net_a_random" and a["control_raw"] == pytest.approx(0.15)
    assert a["ceiling"] == pytest.approx(0.8) and a["normalised"] == pytest.approx(75.0)
    assert vox.iloc[3]["control"] is None or vox.iloc[3]["control"] != vox.iloc[3]["control"]  # no twin: no control
    assert not any(str(b).endswith("_random") and b != "only_random" for b in df["backbone"])
    assert list(df[df["dataset"] == "rdm"]["metric"].unique()) == ["r2"]
    # top N per dataset × ROI, and filters
    assert list(board.query_board(store, top=2, filters={"dataset": "vox"})["backbone"]) == ["net_a", "net_b"]
    # secondary metrics only when asked for: then from the full leaderboard view, random-init rows included
    depth = board.query_board(store, filters={"metric": "hierarchy.depth"})
    assert set(depth["metric"]) == {"hierarchy.depth"} and len(depth) == 6


def test_names_are_never_cut(store: Store) -> None:
    df = board.query_board(store)
    long = "a_backbone_name_far_too_long_to_fit_a_narrow_column_v2"
    for width, legend in ((300, False), (70, True)):
        buf = io.StringIO()
        board.render_first_screen(df, Console(file=buf, width=width, record=False))
        text = buf.getvalue()
        assert "…" not in text
        for name in ("net_a", "net_b", "net_a_random", "only_random", long):
            assert name in text
        assert ("b1 = net_a" in text) is legend
