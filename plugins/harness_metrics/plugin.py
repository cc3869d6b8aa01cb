"""Entry point of the first-party metrics: brain score, Algonauts 2019 RSA, hierarchy slope, selector confidence."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_metrics.rsa import AlgonautsRSA
from harness_metrics.selectors import HierarchySlope, SelectorConfidence
from harness_metrics.voxel import VoxelPearson


@hookimpl
def harness_plugins() -> list[type]:
    return [VoxelPearson, AlgonautsRSA, HierarchySlope, SelectorConfidence]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
