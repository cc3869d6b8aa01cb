"""The Python API (harness.api): same plan, same rows and same leaderboard as the CLI; in-process plugins
run through the runner and are labelled; harness.sql is read-only; tokens/fit on cached tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

import harness
from harness.contracts import Head, HeadInput, HeadOutput, RDMTargets
from harness.errors import HarnessError, QueryError
from harness.scoring import rdm_from_features
from harness.session import SESSION
from harness.specs import LAYER_WEIGHTS, MODEL_RDMS, RDMS, TOKENS, PluginArgs, PluginSpec
from tests.fixtures import algonauts_folder
from tests.helpers import TinyCNN
from tests.test_cli import cli


class _LastArgs(PluginArgs):
    part: str = "global"


class LastLayerRSA(Head):
    """A head a researcher might try in a notebook: every ROI's model RDM from the deepest layer's global token."""

    spec = PluginSpec(id="last_layer_rsa_test", kind="head", version="1", summary="test-only: deepest layer RDM",
                      args=_LastArgs, consumes=frozenset({TOKENS, RDMS}), produces=frozenset({MODEL_RDMS, LAYER_WEIGHTS}))

    def fit_predict(self, data: HeadInput) -> HeadOutput:
        t = data.targets
        assert isinstance(t, RDMTargets) and data.tokens is not None
        layers = data.tokens.layers
        rdm = rdm_from_features(np.asarray(data.tokens.global_(layers[-1]), np.float64))
        rois = list(t.rdms)
        w = np.zeros((len(rois), len(layers)))
        w[:, -1] = 1.0
        return HeadOutput(layers=layers, model_rdms={r: np.repeat(rdm[None], len(t.subject_ids), 0) for r in rois},
                          layer_weights=w, unit_ids=rois, unit_rois=rois)


@pytest.fixture
def api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The test_cli zoo (random MobileNetV2 × RSA × a 10-image Algonauts-layout folder), for API and CLI alike."""
    algo = algonauts_folder(tmp_path / "algo", n=10, n_sub=3)
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True}},
        "heads": {"rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 20}, "tags": ["primary"]}},
        "datasets": {"algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}}},
    }))
    env = {"HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB": str(tmp_path / "api.duckdb"),
           "HARNESS_REGISTRY": str(reg), "HARNESS_CONFIG": str(tmp_path / "none.toml"), "HARNESS_DEVICE": "cpu"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    SESSION.remove()
    yield env
    SESSION.remove()


def test_import_is_cheap_and_api_names_survive_submodule_imports() -> None:
    code = ("import sys, harness; cheap = 'torch' not in sys.modules; import harness.plan, harness.registry; "
            "print(cheap, callable(harness.plan), callable(harness.registry), harness.plan.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "True", "harness.api"]
    from harness.plan import make_plan  # the submodule stays importable by name

    assert callable(make_plan)
    with pytest.raises(AttributeError, match="cannot be replaced"):
        harness.run = None  # type: ignore[assignment]


def test_api_and_cli_give_the_same_leaderboard(api_env: dict[str, str], tmp_path: Path) -> None:
    p = harness.plan(all=True)
    assert len(p) == 1 and [j.backbone.name for j in p] == ["mnv2_rand"]
    frame = p.to_frame()
    assert list(frame["status"]) == ["to run"] and "plan on cpu: 1 jobs" in str(p)
    s = harness.run(p, progress=False)
    assert (s.done, s.cached, s.failed, s.ok) == (1, 0, [], True)
    api_board = harness.leaderboard(wide=True)
    assert harness.run(harness.plan(all=True), progress=False).cached == 1  # resumes: nothing to redo

    # the same plan through the CLI, into its own database
    cli_db = tmp_path / "cli.duckdb"
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("HARNESS_")}, **api_env,
           "HARNESS_DB": str(cli_db)}
    r = cli("run", "--all", env=env)
    assert r.returncode == 0, r.stderr
    harness.settings(db=cli_db)
    try:
        cli_board = harness.leaderboard(wide=True)
        same_jobs = harness.sql("SELECT job_id FROM jobs")["job_id"].tolist()
    finally:
        harness.settings(db=None)
    assert same_jobs == [p.jobs[0].job_id]
    assert len(api_board) == 3 and set(api_board["roi"]) == {"EVC", "IT", "mean"}  # rsa_r2: both ROIs and their mean
    cols = ["dataset", "roi", "rank", "backbone", "head", "metric", "raw", "ceiling", "normalised"]
    assert api_board[cols].equals(cli_board[cols])
    # and what the CLI prints is that table: every row's ROI and score with its CI, to three decimals
    r = cli("leaderboard", env=env)
    assert r.returncode == 0, r.stderr
    for row in cli_board.itertuples():
        assert f"{row.roi} " in r.stdout and f"{row.raw:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]" in r.stdout
    # a secondary metric only when asked for
    assert set(harness.leaderboard(metric="r2")["metric"]) == {"r2"}
    with pytest.raises(HarnessError, match="has no column 'nope'"):
        harness.leaderboard(nope=1)
    with pytest.raises(HarnessError, match="unknown view 'nope'"):
        harness.leaderboard(view="nope")


def test_in_process_plugins_run_through_the_runner_and_are_labelled(api_env: dict[str, str]) -> None:
    harness.register(TinyCNN, name="tiny")
    harness.register(LastLayerRSA, name="last_rsa")
    assert {"tiny", "last_rsa"} <= set(harness.registry().entries)
    assert harness.registry()["tiny"].tags == ("in_process",)
    p = harness.plan(backbones=["tiny", "mnv2_rand"], heads=["last_rsa", "rsa"], datasets=["algo"])
    labels = dict(zip(zip(p.to_frame()["backbone"], p.to_frame()["head"], strict=True), p.to_frame()["in_process"],
                      strict=True))
    assert labels == {("tiny", "last_rsa"): "last_rsa,tiny", ("tiny", "rsa"): "tiny",
                      ("mnv2_rand", "last_rsa"): "last_rsa", ("mnv2_rand", "rsa"): ""}
    s = harness.run(p, progress=False)
    assert s.ok and s.done == 4, s.failed
    jobs = harness.sql("SELECT backbone, head, config FROM jobs ORDER BY backbone, head")
    got = {(b, h): json.loads(c).get("in_process") for b, h, c in jobs.itertuples(index=False)}
    assert got == {("mnv2_rand", "last_rsa"): ["last_rsa"], ("mnv2_rand", "rsa"): None,
                   ("tiny", "last_rsa"): ["last_rsa", "tiny"], ("tiny", "rsa"): ["tiny"]}
    tags = dict(harness.sql("SELECT name, tags FROM entries").itertuples(index=False))
    assert "in_process" in list(tags["tiny"]) and "in_process" in list(tags["last_rsa"])
    assert "in_process" not in list(tags["rsa"]) and list(tags["r2"]) == ["primary"]
    board = harness.leaderboard()
    flags = {(b, h): bool(f) for b, h, f in zip(board["backbone"], board["head"], board["in_process"], strict=True)}
    assert flags == {("mnv2_rand", "rsa"): False, ("mnv2_rand", "last_rsa"): True, ("tiny", "rsa"): True,
                     ("tiny", "last_rsa"): True}

    # an installed plugin id cannot be shadowed in-process; a typo'd argument fails in the registering cell
    from harness_heads.rsa_head import RSAHead

    class Shadow(RSAHead):
        pass

    with pytest.raises(HarnessError, match="already installed"):
        harness.register(Shadow)
    with pytest.raises(HarnessError, match="args.prt: unknown argument"):
        harness.register("bad", kind="head", plugin="last_layer_rsa_test", args={"prt": "x"})
    harness.unregister("tiny")
    assert "tiny" not in harness.registry()


def test_tokens_and_fit_on_cached_tokens(api_env: dict[str, str]) -> None:
    harness.register(TinyCNN, name="tiny")
    ts = harness.tokens("tiny", "algo")
    assert ts.layers == ("s1", "s2", "s3", "s4") and len(ts) == 10
    local = ts.layer("s2")
    assert isinstance(local, np.memmap) and local.shape == (10, 16, 8, 8)
    g = ts.layer("s4", "global", as_="torch")
    assert tuple(g.shape) == (10, 64) and str(g.dtype) == "torch.float32"
    # the head class is fitted directly (not registered); its model RDM is the numpy formula on the same tokens
    out = harness.fit(LastLayerRSA, ts, "algo")
    expected = rdm_from_features(np.asarray(ts.layer("s4", "global"), np.float64))
    np.testing.assert_allclose(out.model_rdms["IT"][1], expected)
    # a registry head on a layer subset only sees those layers
    sub = harness.tokens("tiny", "algo", layers=["s1", "s3"])
    assert sub.key == ts.key  # one cache entry, two views
    out = harness.fit("rsa", sub, "algo")
    assert out.layers == ("s1", "s3") and np.allclose(out.layer_weights.sum(1), 1)
    with pytest.raises(HarnessError, match="no layer"):
        ts.layer("s9")
    with pytest.raises(HarnessError, match="no subject"):
        harness.fit("rsa", ts, "algo", subject="nobody")


def test_sql_is_read_only_like_the_cli(api_env: dict[str, str]) -> None:
    harness.run(harness.plan(all=True), progress=False)
    n = len(harness.sql("SELECT * FROM jobs"))
    for q in ("DELETE FROM jobs", "DROP TABLE jobs", "SELECT 1; DELETE FROM jobs",
              "CREATE TABLE x AS SELECT 1", "INSERT INTO runs SELECT * FROM runs"):
        with pytest.raises(QueryError):  # bad input (exit 2), refused before the database is touched
            harness.sql(q)
    assert len(harness.sql("SELECT * FROM jobs")) == n == 1
    assert harness.sql("SELECT count(*) AS n FROM jobs WHERE status = ?", ["done"])["n"].item() == 1


def test_bad_arguments_fail_with_one_line(api_env: dict[str, str]) -> None:
    with pytest.raises(HarnessError, match="say what to plan"):
        harness.plan()
    with pytest.raises(HarnessError, match="unknown backbone entry"):
        harness.plan(backbones=["nope"])
    with pytest.raises(HarnessError, match="unknown executor"):
        harness.run(harness.plan(all=True), executor="slurm")
    with pytest.raises(HarnessError, match="unknown setting"):
        harness.settings(dbb="x")
    with pytest.raises(HarnessError, match="no database yet"):
        harness.leaderboard()
