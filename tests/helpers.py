"""Test helpers: build a Factory from an in-memory registry without touching registry.yaml."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from harness.contracts import HeadInput, HeadOutput
from harness.factory import ExtractionOptions, Factory
from harness.hooked import HookedBackbone
from harness.hookspecs import hookimpl
from harness.plugins import default_catalog
from harness.registry import load_registry
from harness.settings import load_settings
from harness.specs import IMAGES, TOKENS, PluginArgs, PluginSpec, Preprocess
from harness_heads.ridge_head import RidgeArgs, RidgeHead


def make_factory(registry: dict[str, Any], tmp_path: Path, device: str = "cpu", **extraction: Any) -> Factory:
    path = tmp_path / "registry.yaml"
    # isolate tests from other installed plugins' own entries unless the test asks for them
    path.write_text(yaml.safe_dump({"plugin_entries": False, **registry}))
    settings = load_settings().with_overrides(registry=path)
    reg = load_registry(default_catalog(), path)
    return Factory(catalog=default_catalog(), registry=reg, settings=settings, device=device,
                   extraction=ExtractionOptions(**extraction))


class _TinyArgs(PluginArgs):
    width: int = 8


class TinyCNN(HookedBackbone):
    """Test-only backbone: four stride-2 conv stages on 32 px inputs (token grids 16², 8², 4², 2²); register it
    with ``make_manager(extra_plugins=[...])`` under the plugin id ``tiny_cnn_test``."""

    spec = PluginSpec(id="tiny_cnn_test", kind="backbone", version="1", summary="test-only tiny CNN", args=_TinyArgs,
                      consumes=frozenset({IMAGES}), produces=frozenset({TOKENS}))

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(resize=32, crop=32)

    def layer_modules(self) -> dict[str, str]:
        return {f"s{i}": f"{i - 1}" for i in range(1, 5)}

    def build_module(self) -> nn.Module:
        w = self.args.width
        chans = [3, w, 2 * w, 4 * w, 8 * w]
        return nn.Sequential(*[nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1), nn.ReLU()) for i in range(4)])


class _GatedArgs(RidgeArgs):
    #: folder where each attempt drops ``started-<pid>`` and then waits for a ``go`` file
    gate: str
    wait_s: float = 120.0


class GatedRidge(RidgeHead):
    """Test-only ridge head that announces its process and blocks until the test opens the gate, so a test can
    kill the worker running it (or interrupt the driver) mid-job; register it like :class:`TinyCNN`."""

    spec = RidgeHead.spec.model_copy(update={"id": "gated_ridge_test", "args": _GatedArgs, "summary": "test-only gated ridge"})
    args: _GatedArgs

    def fit_predict(self, data: HeadInput) -> HeadOutput:
        gate = Path(self.args.gate)
        name = f"started-{os.getpid()}-{time.monotonic_ns()}"
        (gate / f".{name}").write_text(str(os.getpid()))
        (gate / f".{name}").rename(gate / name)  # whole or absent for a test polling the folder
        deadline = time.monotonic() + self.args.wait_s
        try:
            while not (gate / "go").exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gate {gate} never opened")
                time.sleep(0.05)
        except KeyboardInterrupt:  # how Ray cancels a running task (without force)
            (gate / f"cancelled-{os.getpid()}").touch()
            raise
        return super().fit_predict(data)


class HelperPlugins:
    """``make_manager(extra_plugins=[HelperPlugins()])``: the test-only backbone and head."""

    @hookimpl
    def harness_plugins(self) -> list[type]:
        return [TinyCNN, GatedRidge]


#: the object an entry point names to make the test plugins visible to a `harness` subprocess
HELPER_PLUGINS = HelperPlugins()


def plugin_site(root: Path) -> Path:
    """A folder that, put on PYTHONPATH, registers :data:`HELPER_PLUGINS` as an installed ``harness`` plugin."""
    dist = root / "harness_test_helpers-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-test-helpers\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[harness]\ntest_helpers = tests.helpers:HELPER_PLUGINS\n")
    return root
