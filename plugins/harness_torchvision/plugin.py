"""Entry point of the torchvision classification nets (MobileNetV2, AlexNet, ResNet-50): hooks only (the backbone is in :mod:`harness_torchvision.torchvision_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_torchvision.specs import TORCHVISION


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(TORCHVISION, "harness_torchvision.torchvision_backbone:TorchvisionBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
