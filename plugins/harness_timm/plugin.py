"""Entry point of the timm backbones (ViTs, ResNets, SE-ResNeXt, EfficientNet(-Lite), MoCo v3 ViTs): hooks only (the backbone is in :mod:`harness_timm.timm_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_timm.specs import TIMM


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(TIMM, "harness_timm.timm_backbone:TimmBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
