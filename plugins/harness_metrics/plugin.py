"""Entry point of the first-party metrics: brain score, Algonauts 2019 RSA, hierarchy slope, selector confidence."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_metrics.specs import HIERARCHY_SLOPE, PEARSON, RSA_R2, SELECTOR_CONFIDENCE


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [
        LazyPlugin(PEARSON, "harness_metrics.voxel:VoxelPearson"),
        LazyPlugin(RSA_R2, "harness_metrics.rsa:AlgonautsRSA"),
        LazyPlugin(HIERARCHY_SLOPE, "harness_metrics.selectors:HierarchySlope"),
        LazyPlugin(SELECTOR_CONFIDENCE, "harness_metrics.selectors:SelectorConfidence"),
    ]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
