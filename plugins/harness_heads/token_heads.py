"""The token baselines of the FactorTopy paper (Table 3): classToken and patchToken.

Both transform every layer separately into one bottleneck, average the layers
uniformly and read each voxel out linearly: they select neither layer nor
location, which is what FactorTopy's selectors are compared against.

- classToken: a linear map of each layer's global token (CLS for ViTs, mean-pooled map for CNNs).
- patchToken: each layer's local token map, flattened, compressed by a per-layer MLP
  (the map is average-pooled to at most ``grid × grid`` first, default 8, so the
  first linear layer stays a few million weights even for wide layers).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from harness.contracts import LayerTokens
from harness.kit.token_source import Parts
from harness.kit.trained_head import PreparedData, Selections, TrainedVoxelHead
from harness.kit.training import ChunkedVoxelModel
from harness_heads.specs import CLASSTOKEN, PATCHTOKEN, ClassTokenArgs, PatchTokenArgs


class LayerAverageNet(ChunkedVoxelModel):
    """Per-layer transforms into a shared bottleneck, averaged over layers, linear readout per voxel."""

    def __init__(self, transforms: list[nn.Module], use_local: bool, n_voxels: int, bottleneck: int) -> None:
        super().__init__()
        self.n_voxels = n_voxels
        self.use_local = use_local
        self.transforms = nn.ModuleList(transforms)
        self.weight = nn.Parameter(torch.randn(n_voxels, bottleneck) / math.sqrt(bottleneck))
        self.bias = nn.Parameter(torch.zeros(n_voxels))

    def shared(self, batch: list[LayerTokens]) -> list[torch.Tensor]:
        parts = [tf(t.local if self.use_local else t.global_) for tf, t in zip(self.transforms, batch, strict=True)]
        return [torch.stack(parts).mean(0)]  # N×D

    def readout(self, shared: list[torch.Tensor], vox: slice) -> torch.Tensor:
        return shared[0] @ self.weight[vox].T + self.bias[vox]


class ClassTokenHead(TrainedVoxelHead):
    spec = CLASSTOKEN
    args: ClassTokenArgs
    parts: ClassVar[Parts] = "global"

    def build_model(self, data: PreparedData) -> ChunkedVoxelModel:
        d = self.args.bottleneck
        tfs = [nn.Linear(c, d) for c, _, _ in data.source.shapes()]
        return LayerAverageNet(tfs, False, len(data.targets.voxels), d)

    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        return Selections()


class PatchTokenHead(TrainedVoxelHead):
    spec = PATCHTOKEN
    args: PatchTokenArgs
    parts: ClassVar[Parts] = "local"

    def build_model(self, data: PreparedData) -> ChunkedVoxelModel:
        a = self.args
        tfs = [nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, a.hidden), nn.GELU(), nn.Linear(a.hidden, a.bottleneck))
               for c, h, w in data.source.shapes()]
        return LayerAverageNet(tfs, True, len(data.targets.voxels), a.bottleneck)

    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        return Selections()

    def extra_info(self, model: ChunkedVoxelModel) -> dict[str, Any]:
        return {"n_params": sum(p.numel() for p in model.parameters())}
