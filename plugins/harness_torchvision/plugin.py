"""Entry point of the torchvision classification nets (MobileNetV2, AlexNet, ResNet-50): hooks only (the backbone is in :mod:`harness_torchvision.torchvision_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_torchvision.torchvision_backbone import TorchvisionBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [TorchvisionBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
