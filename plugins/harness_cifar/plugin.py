"""Entry point of the CIFAR-10 ResNet-20/32/44/56/110: hooks only (the backbone is in :mod:`harness_cifar.cifar_resnet_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_cifar.cifar_resnet_backbone import CifarResNetBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [CifarResNetBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
