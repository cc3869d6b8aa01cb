"""Entry point of the first-party metrics: brain score, Algonauts 2019 RSA, hierarchy slope, selector confidence.

``noise_ceiling_rdm`` moved to :mod:`harness.kit.ceilings` (shared with datasets); it is re-exported here for
callers that imported it from the plugin.
"""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.kit.ceilings import noise_ceiling_rdm
from harness_metrics.rsa import AlgonautsRSA, RSAArgs
from harness_metrics.selectors import HierarchySlope, SelectorConfidence
from harness_metrics.voxel import PearsonArgs, VoxelPearson

__all__ = ["AlgonautsRSA", "HierarchySlope", "PearsonArgs", "RSAArgs", "SelectorConfidence", "VoxelPearson",
           "noise_ceiling_rdm"]


@hookimpl
def harness_plugins() -> list[type]:
    return [VoxelPearson, AlgonautsRSA, HierarchySlope, SelectorConfidence]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
