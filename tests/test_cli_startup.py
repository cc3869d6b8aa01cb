"""The everyday commands must not import torch or a model library (issue 12, target 4).

Why a test: the start-up time of the everyday commands rots silently the day one plugin module imports
torch at the top again. Timing is left to ``benchmarks/bench_cli_startup.py``; this checks the cause, in a
fresh interpreter, with the installed plugins and the checkout's registry. ``plan`` and ``weights status``
ask model libraries which weight file an entry needs; the answers are remembered per library version
(:mod:`harness.kit.libfacts`), so those two are checked on their second run in one home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import RegistryError
from harness.specs import LazyPlugin, PluginSpec

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "transformers", "diffusers", "open_clip", "torchvision", "segment_anything")

PROBE = """
import json, sys
from harness.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("\\nLOADED " + json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def heavy_modules_after(args: list[str], tmp_path: Path) -> list[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_HOME": str(tmp_path / "home"), "HARNESS_DB": str(tmp_path / "db.duckdb"),
           "HARNESS_REGISTRY": str(ROOT / "registry.yaml")}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOADED "))
    return json.loads(line[len("LOADED "):])


@pytest.mark.parametrize("args", [["list"], ["--help"], ["data", "status"]])
def test_everyday_commands_import_no_torch(args: list[str], tmp_path: Path) -> None:
    assert heavy_modules_after(args, tmp_path) == []


@pytest.mark.parametrize("args", [["plan", "--all"], ["weights", "status"]])
def test_planning_imports_no_model_library_once_its_answers_are_known(args: list[str], tmp_path: Path) -> None:
    """Every backbone entry is built and asked for its weights and precision: class modules must load without
    torch, and the library answers (timm's pretrained cfgs, open_clip's download table) come from the home."""
    heavy_modules_after(args, tmp_path)  # a new home: the answers are asked once (and the libraries imported)
    assert heavy_modules_after(args, tmp_path) == []


def test_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The check above can fail: in a new home `weights status` asks timm and open_clip themselves (torch with them)."""
    assert "torch" in heavy_modules_after(["weights", "status"], tmp_path)


def test_a_class_whose_spec_drifted_from_its_declaration_fails_with_one_line() -> None:
    spec = PluginSpec(id="probe", kind="head", version="1", summary="probe")
    with pytest.raises(RegistryError, match=r"harness_heads\.ridge_head:RidgeHead.*differs from the declared one"):
        LazyPlugin(spec, "harness_heads.ridge_head:RidgeHead").load()


def test_lazy_declaration_errors_name_the_target() -> None:
    spec = PluginSpec(id="probe", kind="head", version="1", summary="probe")
    with pytest.raises(RegistryError, match=r"must be 'package\.module:Class'"):
        LazyPlugin(spec, "harness_heads.ridge_head.RidgeHead")
    with pytest.raises(RegistryError, match="has no class 'Nope'"):
        LazyPlugin(spec, "harness_heads.ridge_head:Nope").load()
