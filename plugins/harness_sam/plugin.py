"""Entry point of the SAM image-encoder backbones and their registry fragment (SAM B/L/H)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_sam.specs import SAM


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(SAM, "harness_sam.sam_backbone:SamBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
