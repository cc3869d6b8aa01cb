"""Test helpers: build a Factory from an in-memory registry without touching registry.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.factory import ExtractionOptions, Factory
from harness.plugins import default_catalog
from harness.registry import load_registry
from harness.settings import load_settings


def make_factory(registry: dict[str, Any], tmp_path: Path, device: str = "cpu", **extraction: Any) -> Factory:
    path = tmp_path / "registry.yaml"
    # isolate tests from other installed plugins' own entries unless the test asks for them
    path.write_text(yaml.safe_dump({"plugin_entries": False, **registry}))
    settings = load_settings().with_overrides(registry=path)
    reg = load_registry(default_catalog(), path)
    return Factory(catalog=default_catalog(), registry=reg, settings=settings, device=device,
                   extraction=ExtractionOptions(**extraction))
