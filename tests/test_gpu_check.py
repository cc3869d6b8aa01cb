"""benchmarks/gpu_check.py at tiny sizes on the CPU, so the GPU script cannot rot between GPU sessions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402


def test_gpu_check_tiny_on_cpu_writes_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    out = tmp_path / "check.json"
    # run_all is a subprocess of the CLI (covered by the CLI tests); everything else runs here
    assert gpu_check.main(["--device", "cpu", "--tiny", "--json", str(out), "--skip", "run_all"]) == 0
    rows = json.loads(out.read_text())["rows"]
    checks = {r["check"] for r in rows}
    assert {"device", "extraction", "ridge", "factortopy", "run_all"} <= checks
    assert not [r for r in rows if r["setting"] == "FAILED"]
    speeds = [r["value"] for r in rows if r["check"] == "extraction"]
    assert len(speeds) == 4 and all(v > 0 for v in speeds)  # two nets × fp32/bf16
    steps = next(r for r in rows if r["check"] == "factortopy" and r["unit"] == "steps/s")
    assert steps["value"] > 0
    printed = capsys.readouterr().out
    assert "no usable CUDA device" in printed or "GPU(s)" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_check_says_what_it_found_when_cuda_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--device", "cuda", "--tiny", "--json", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    assert "CUDA is not usable here" in capsys.readouterr().err
