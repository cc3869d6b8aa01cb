"""Entry point of the open_clip backbones and their registry fragment (the paper's CLIP data-scale series)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_openclip.specs import OPENCLIP


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(OPENCLIP, "harness_openclip.openclip_backbone:OpenClipBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
