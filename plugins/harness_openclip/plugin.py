"""Entry point of the open_clip backbones and their registry fragment (the paper's CLIP data-scale series)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_openclip.openclip_backbone import OpenClipBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [OpenClipBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
