"""`harness analyze clusters|channels` as a user meets it: after `harness run`, rows in the database, PNGs on disk,
one-line errors, reruns that replace rather than duplicate.

In-process (typer's CliRunner) rather than subprocesses: each `python -m harness` pays torch's import again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError


def cli(*args: str, env: dict[str, str]) -> SimpleNamespace:
    """Like the console script: exit code 0, or the HarnessError's code with its one line on stderr."""
    r = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if isinstance(r.exception, HarnessError):
        return SimpleNamespace(returncode=r.exception.exit_code, stdout=r.output, stderr=str(r.exception))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return SimpleNamespace(returncode=r.exit_code, stdout=r.output, stderr="")

pytest.importorskip("timm")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("cli_analyze")
    reg = tmp / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {"rn": {"plugin": "timm", "random_init": True, "args": {
            "model": "resnet18", "preprocess": {"resize": 32, "crop": 32, "interpolation": "bilinear"}}}},
        "heads": {"ft": {"plugin": "factortopy", "args": {"bottleneck": 8, "max_steps": 20, "eval_every": 10}},
                  "ridge": {"plugin": "ridge"}},
        "metrics": {"pearson": {"plugin": "pearson"}},
        "datasets": {"brain": {"plugin": "synthetic_voxels", "args": {
            "backbone": "rn", "n_stimuli": 60, "image_size": 32, "n_subjects": 1, "voxels_per_roi": 6}}},
    }))
    e = {"HARNESS_HOME": str(tmp / "home"), "HARNESS_DB": str(tmp / "lb.duckdb"), "HARNESS_REGISTRY": str(reg),
         "HARNESS_CONFIG": str(tmp / "none.toml"), "HF_HUB_OFFLINE": "1"}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HARNESS_DATA_ROOT", raising=False)
        for k, v in e.items():
            mp.setenv(k, v)
        r = cli("--quiet", "run", "-b", "rn", "-H", "ft,ridge", "-d", "brain", env=e)
        assert r.returncode == 0, r.stdout + r.stderr
        yield e


def _q(env: dict[str, str], sql: str) -> list[tuple]:
    with duckdb.connect(env["HARNESS_DB"], read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_clusters_and_channels_write_rows_and_files(env: dict[str, str], tmp_path: Path) -> None:
    # the trained head's model is linked to its job; ridge saves none
    arts = _q(env, "SELECT j.head, a.name, a.path, a.sha256 FROM artifacts a JOIN jobs j USING (job_id)")
    assert [(h, n) for h, n, _, _ in arts] == [("ft", "model")]
    assert Path(arts[0][2]).is_file() and Path(arts[0][2]).stem == arts[0][3]

    for _ in range(2):  # a rerun replaces its rows
        r = cli("analyze", "clusters", "-b", "rn", "-H", "ft", "-d", "brain", "--k", "3", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "adjusted Rand index vs the 4 ROIs" in r.stdout
    assert _q(env, "SELECT count(*), count(DISTINCT cluster), min(layer_depth) >= 0, max(layer_depth) <= 1 "
                   "FROM clusters") == [(24, 3, True, True)]
    summary = _q(env, "SELECT sum(size), count(*) FROM cluster_summary")
    assert summary == [(24, 3)]

    out = tmp_path / "png"
    r = cli("analyze", "channels", "-b", "rn", "-H", "ft", "-d", "brain", "--roi", "V1", "--out", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list(out.glob("roi_V1_*.png"))) == 5  # 4 test stimuli + the response map
    rows = _q(env, "SELECT stimulus, peak_x BETWEEN 0 AND 1, peak_y BETWEEN 0 AND 1 FROM channel_images")
    assert len(rows) == 5 and all(a and b for _, a, b in rows) and ("(response map)", True, True) in rows
    r = cli("analyze", "channels", "-b", "rn", "-H", "ft", "-d", "brain", "--unit", "V2_00001", "--stimuli",
            "img00000,img00001", "--out", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (out / "unit_V2_00001_img00001.png").is_file()


@pytest.mark.slow
def test_analyze_errors_are_one_line(env: dict[str, str], tmp_path: Path) -> None:
    r = cli("analyze", "clusters", "-b", "rn", "-H", "ridge", "-d", "brain", env=env)
    assert r.returncode == 2 and "gives no channel readout" in r.stderr
    r = cli("analyze", "channels", "-b", "rn", "-H", "ft", "-d", "brain", "--roi", "MT", "--out", str(tmp_path), env=env)
    assert r.returncode == 2 and "ROI 'MT' not among" in r.stderr
    r = cli("analyze", "clusters", "-b", "rn", "-H", "ft", "-d", "brain", "--k", "99", env=env)
    assert r.returncode == 2 and "--k must be between 2" in r.stderr
