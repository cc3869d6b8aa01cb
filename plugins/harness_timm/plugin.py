"""Entry point of the timm backbones (ViTs, ResNets, SE-ResNeXt, EfficientNet(-Lite), MoCo v3 ViTs): hooks only (the backbone is in :mod:`harness_timm.timm_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_timm.timm_backbone import TimmBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [TimmBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
