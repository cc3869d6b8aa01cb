"""Entry point of the CIFAR-10 ResNet-20/32/44/56/110: hooks only (the backbone is in :mod:`harness_cifar.cifar_resnet_backbone`)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_cifar.specs import CIFAR_RESNET


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(CIFAR_RESNET, "harness_cifar.cifar_resnet_backbone:CifarResNetBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
