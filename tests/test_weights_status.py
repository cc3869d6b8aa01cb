"""`harness weights status`, and a missing-weights entry through `harness run` with and without --random-init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.fixtures import algonauts_folder


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with one entry per status, private (empty) hub caches and a tiny Algonauts-layout dataset."""
    import huggingface_hub.constants
    from harness_cifar.resnet import CifarResNet
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "lb.duckdb"))
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("HARNESS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    torch.manual_seed(0)
    weights = tmp_path / "r20.safetensors"
    save_file(CifarResNet(20).state_dict(), str(weights))
    vit = {"plugin": "timm", "args": {"model": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}}
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({
        "plugin_entries": False,
        "backbones": {
            "r20_local": {"plugin": "cifar_resnet", "args": {"depth": 20, "weights": str(weights)},
                          "meta": {"family": "cifar_resnet", "weights_from": "a file written by this test"}},
            "vit_missing": {**vit, "meta": {"family": "vit"}},
            "vit_control": {**vit, "random_init": True},
            "not_a_model": {"plugin": "timm", "args": {"model": "vit_nonexistent_patch16"}},
        },
        "heads": {"rsa": {"plugin": "rsa", "args": {"pool": 2}}},
        "metrics": {"r2": {"plugin": "rsa_r2", "args": {"n_boot": 20}}},
        "datasets": {"algo": {"plugin": "algonauts2019", "args": {"root": str(algonauts_folder(tmp_path / "algo", n=10,
                                                                                              n_sub=3))}}},
    }))
    return reg


def lines_of(output: str) -> dict[str, str]:
    """Table rows and reason lines, keyed by their first word (the entry name)."""
    out: dict[str, str] = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 5:
            out[cells[0]] = cells[3]
        elif "│" not in line and ": " in line:
            name, reason = line.split(": ", 1)
            out[name + ":reason"] = reason
    return out


def test_weights_status_lists_every_entry(zoo: Path) -> None:
    from harness.cli import app

    res = CliRunner().invoke(app, ["--registry", str(zoo), "weights", "status"])
    assert res.exit_code == 0, res.output
    rows = lines_of(res.output)
    assert rows["r20_local"] == "available"
    assert rows["vit_missing"] == "missing"
    assert rows["vit_control"] == "random-init"
    assert rows["not_a_model"] == "missing"
    reason = rows["vit_missing:reason"]
    assert "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/model.safetensors" in reason and "--random-init" in reason
    assert "timm has no model 'vit_nonexistent_patch16'" in rows["not_a_model:reason"]
    assert "1 available, 2 missing, 1 random-init" in res.output

    only = CliRunner().invoke(app, ["--registry", str(zoo), "weights", "status", "--only", "missing"])
    assert only.exit_code == 0 and "r20_local" not in only.output and "vit_missing" in only.output
    bad = CliRunner().invoke(app, ["--registry", str(zoo), "weights", "status", "--only", "gone"])
    assert bad.exit_code != 0


def test_missing_weights_skip_with_one_line_and_random_init_runs(zoo: Path) -> None:
    from harness.cli import app
    from harness.store import Store

    sel = ["--registry", str(zoo), "run", "-b", "vit_missing", "-H", "rsa", "-d", "algo", "-m", "r2", "--device", "cpu"]
    res = CliRunner().invoke(app, sel)
    assert res.exit_code != 0 and "nothing to run" in str(res.exception), res.output  # issue 16: exit 2 via main()
    flat = " ".join(res.output.split())
    assert "skipped" in flat and "backbone vit_missing" in flat
    assert "vit_tiny_patch16_224.augreg_in21k_ft_in1k" in flat and "--random-init" in flat

    res = CliRunner().invoke(app, [*sel, "--random-init"])
    assert res.exit_code == 0, res.output
    assert "1 done" in res.output
    jobs = Store(zoo.parent / "lb.duckdb").query("SELECT backbone, status, random_init FROM jobs")
    assert list(jobs.itertuples(index=False, name=None)) == [("vit_missing", "done", True)]
