"""GNet-style baseline (St-Yves et al. 2022, as in FactorTopy's Table 3): per voxel and per layer, a
learned 2-D spatial pooling field over the local tokens.

Each layer's tokens are aligned into a shared bottleneck (1×1 linear map); voxel
``v`` pools layer ``l``'s aligned map with its own field ``softmax(f_vl)`` over the
token grid (a normalised spatial receptive field, uniform at the start) and reads
the pooled vectors of all layers with one linear readout. Unlike FactorTopy the
fields are free per voxel (no topology) and are full maps rather than a point, and
layers are not selected but all read at once. What it "selected" is still
reported: each voxel's layer weights are the shares of its readout-weight energy per
layer, its location the centre of mass of its fields (weighted by those shares).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.contracts import LayerTokens
from harness.kit.trained_head import PreparedData, Selections, TrainedVoxelHead
from harness.kit.training import ChunkedVoxelModel, voxel_chunks
from harness_heads.specs import GNET, GNetArgs


class GNetNet(ChunkedVoxelModel):
    def __init__(self, shapes: list[tuple[int, int, int]], n_voxels: int, bottleneck: int, field_lr: float = 10.0) -> None:
        super().__init__()
        self.n_voxels = n_voxels
        self.field_lr = field_lr
        self.grids = [(h, w) for _, h, w in shapes]
        self.align = nn.ModuleList([nn.Conv2d(c, bottleneck, 1, bias=False) for c, _, _ in shapes])
        self.fields = nn.ParameterList([nn.Parameter(torch.zeros(n_voxels, h * w)) for _, h, w in shapes])
        self.weight = nn.Parameter(torch.randn(n_voxels, len(shapes), bottleneck) / math.sqrt(bottleneck * len(shapes)))
        self.bias = nn.Parameter(torch.zeros(n_voxels))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        fields = {id(p) for p in self.fields}
        rest = [p for p in self.parameters() if id(p) not in fields]
        return [{"params": rest, "lr": lr}, {"params": list(self.fields), "lr": lr * self.field_lr}]

    def shared(self, batch: list[LayerTokens]) -> list[torch.Tensor]:
        return [a(t.local).flatten(2) for a, t in zip(self.align, batch, strict=True)]  # N×D×P each

    def readout(self, shared: list[torch.Tensor], vox: slice) -> torch.Tensor:
        pred = self.bias[vox]
        for li, x in enumerate(shared):
            field = torch.softmax(self.fields[li][vox], dim=-1)  # Vc×P
            pooled = torch.einsum("ndp,vp->nvd", x, field)
            pred = pred + torch.einsum("nvd,vd->nv", pooled, self.weight[vox, li])
        return pred

    @torch.no_grad()
    def selections(self, chunk: int = 8192) -> Selections:
        """Layer weights: readout-energy shares. Location: centre of mass of the field of the voxel's
        dominant layer (the fields of layers a voxel barely reads stay near uniform, centred)."""
        energy = self.weight.square().sum(-1)  # V×L
        lw = (energy / energy.sum(1, keepdim=True)).cpu().double().numpy()
        top = lw.argmax(1)
        xy = np.zeros((self.n_voxels, 2))
        for li, (h, w) in enumerate(self.grids):
            gy, gx = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
            centres = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(self.weight.device)  # P×2
            for vox in voxel_chunks(self.n_voxels, chunk):
                com = (torch.softmax(self.fields[li][vox], dim=-1) @ centres).cpu().double().numpy()  # Vc×2
                mine = top[vox] == li
                xy[vox][mine] = com[mine]
        return Selections(layer_weights=lw, space=xy[:, None, :])


class GNetHead(TrainedVoxelHead):
    spec = GNET
    args: GNetArgs
    parts = "local"

    def build_model(self, data: PreparedData) -> ChunkedVoxelModel:
        return GNetNet(data.source.shapes(), len(data.targets.voxels), self.args.bottleneck, self.args.field_lr)

    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        assert isinstance(model, GNetNet)
        return model.selections()
