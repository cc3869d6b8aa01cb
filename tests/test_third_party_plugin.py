"""A plugin packaged as its own distribution joins the harness by `pip install` alone.

The example Gabor V1 backbone (examples/harness-gabor) is installed into a fresh
virtual environment layered on this one; it must then show up in `harness list` and
be crossed by `harness run --all`, with no change to the core.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False, symlinks=True)
    py = root / "bin" / "python"
    site_dir = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # layer the new venv on ours (torch, harness …) without reinstalling them
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_dir / "_parent_env.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
    # pip (and setuptools) of this environment install the distribution into the new venv's site-packages
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site_dir), str(REPO / "examples" / "harness-gabor")], check=True, timeout=300)
    return py


def harness(py: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([py, "-m", "harness", *args], capture_output=True, text=True, env=env, timeout=600)


def test_pip_installed_plugin_is_listed_and_run(plugin_venv: Path, tmp_path: Path) -> None:
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": ["gabor"],  # only the newly installed plugin's own entries join this zoo
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True}},
        "heads": {"ridge": {"plugin": "ridge", "args": {"alphas": [1.0, 100.0], "pool": 2}}},
        "metrics": {"pearson": {"plugin": "pearson", "args": {"n_boot": 10}}},
        "datasets": {"syn": {"plugin": "synthetic_voxels",
                             "args": {"backbone": "mnv2_rand", "n_stimuli": 30, "voxels_per_roi": 3,
                                      "n_subjects": 1, "image_size": 32}}},
    }))
    env = {**os.environ, "HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB": str(tmp_path / "lb.duckdb"),
           "HARNESS_REGISTRY": str(reg), "HARNESS_CONFIG": str(tmp_path / "none.toml"), "HF_HUB_OFFLINE": "1"}
    listed = harness(plugin_venv, "list", "--kind", "backbone", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "gabor" in listed.stdout and "gabor_v1" in listed.stdout
    # the parent environment (without the plugin) does not see it
    parent = subprocess.run([sys.executable, "-m", "harness", "list", "--kind", "backbone"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert "gabor_v1" not in parent.stdout
    ran = harness(plugin_venv, "-q", "run", "--all", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = harness(plugin_venv, "sql", "--csv", str(tmp_path / "o.csv"),
                  "SELECT backbone, status FROM jobs ORDER BY backbone", env=env)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines == ["backbone,status", "gabor_v1,done", "mnv2_rand,done"]
    meta = harness(plugin_venv, "sql", "--csv", str(tmp_path / "e.csv"),
                   "SELECT meta FROM entries WHERE name = 'gabor_v1'", env=env)
    assert meta.returncode == 0
    assert json.loads((tmp_path / "e.csv").read_text().splitlines()[1].strip('"').replace('""', '"'))["family"] == "gabor"
