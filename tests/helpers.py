"""Test helpers: build a Factory from an in-memory registry without touching registry.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch import nn

from harness.factory import ExtractionOptions, Factory
from harness.kit.hooked import HookedBackbone
from harness.settings import load_settings
from harness.specs import IMAGES, TOKENS, PluginArgs, PluginSpec, Preprocess


def make_factory(registry: dict[str, Any], tmp_path: Path, device: str = "cpu", **extraction: Any) -> Factory:
    path = tmp_path / "registry.yaml"
    # isolate tests from other installed plugins' own entries unless the test asks for them
    path.write_text(yaml.safe_dump({"plugin_entries": False, **registry}))
    return Factory.open(load_settings().with_overrides(registry=path), device=device,
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
