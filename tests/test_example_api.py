"""examples/python_api.py runs end to end on the shared data (so docs/python.md's example cannot rot), and the
issue's one-liner works in a fresh interpreter with nothing but the installed package and the shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, home: Path, data: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    return {**base, "HARNESS_HOME": str(home), "HARNESS_DB": str(tmp_path / "lb.duckdb"), "HARNESS_DATA_ROOT": str(data),
            "HARNESS_CONFIG": str(tmp_path / "none.toml"), "HF_HUB_OFFLINE": "1", "HARNESS_DEVICE": "cpu",
            "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


def test_example_script_runs(tmp_path: Path, shared_data: Path, shared_home: Path) -> None:
    out = tmp_path / "plot.png"
    env = {**_env(tmp_path, shared_home, shared_data), "HARNESS_EXAMPLE_OUT": str(out)}
    r = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    # the leaderboard it printed: both datasets, the pretrained net with its random-init control beside on cichy92
    assert "cichy92" in r.stdout and "synthetic" in r.stdout
    assert any("cichy92" in line and "efficientnet_lite0_random" in line for line in r.stdout.splitlines())
    assert "skipped:" in r.stdout and "head takes ['voxels'], dataset gives rdms" in r.stdout


def test_issue_one_liner_in_a_fresh_interpreter(tmp_path: Path, shared_data: Path, shared_home: Path) -> None:
    code = ("import harness; s = harness.run(harness.plan(backbones=['efficientnet_lite0'], heads=['ridge'], "
            "datasets=['synthetic']), progress=False); assert s.ok, s; "
            "b = harness.leaderboard(); print(sorted(set(b['roi'])), b['metric'].unique().tolist(), len(b))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(tmp_path, shared_home, shared_data),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "['IT', 'V1', 'V2', 'V4', 'all'] ['pearson'] 5"
