"""The FactorTopy network: channel alignment, per-voxel layer/space/scale selectors, channel readout.

Each voxel ``v`` predicts

    ŷ_v = c_vᵀ Σ_l w_vl [ (1 − s_v) · sample(A_l L_l, p_v) + s_v · B_l g_l ] + b_v

with ``A_l``/``B_l`` the layer's channel alignment into a shared bottleneck
(``L_l`` local tokens, ``g_l`` global token), ``w_v`` the layer selector (softmax),
``p_v`` the space selector (tanh → coordinates in [−1, 1], bilinear as grid_sample: :mod:`.sampling`),
``s_v`` the scale selector (sigmoid: the global token's share) and ``c_v, b_v`` the
channel selector (a free per-voxel linear readout, as in the paper). The selectors
come from small MLPs of the voxel's coordinates (topology) or, for the
"without topology" ablation and for data without coordinates, from free
per-voxel parameters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.contracts import LayerTokens
from harness.kit.trained_head import Selections
from harness.kit.training import ChunkedVoxelModel, voxel_chunks
from harness_factortopy.sampling import bilinear_matrix, sampled_readout
from harness_factortopy.specs import LayerMode, ScaleMode, SpaceMode


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    last = nn.Linear(hidden, n_out)
    nn.init.zeros_(last.weight)  # every voxel starts from the same (bias-given) selection
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), last)


class CoordSelectors(nn.Module):
    """Selector logits from MLPs of the voxels' positional encodings (nearby voxels, similar selections)."""

    def __init__(self, encoding: torch.Tensor, outputs: dict[str, int], hidden: int,
                 init: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.register_buffer("encoding", encoding)
        self.mlps = nn.ModuleDict({k: _mlp(encoding.shape[1], hidden, n) for k, n in outputs.items()})
        with torch.no_grad():
            for k, b in (init or {}).items():
                self.mlps[k][-1].bias.copy_(b)

    def forward(self, name: str, vox: slice) -> torch.Tensor:
        return self.mlps[name](self.encoding[vox])


class FreeSelectors(nn.Module):
    """Free per-voxel selector logits (the "without topology" ablation)."""

    def __init__(self, n_voxels: int, outputs: dict[str, int], init: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        init = init or {}
        self.params = nn.ParameterDict({
            k: nn.Parameter(init[k].expand(n_voxels, n).clone() if k in init else torch.zeros(n_voxels, n))
            for k, n in outputs.items()
        })

    def forward(self, name: str, vox: slice) -> torch.Tensor:
        return self.params[name][vox]


def space_init(samples: int, radius: float = 0.25) -> torch.Tensor:
    """Pre-tanh start of the space selector: the centre, or ``samples`` points on a small circle.

    Several samples must start apart: identical starts get identical gradients forever.
    """
    if samples == 1:
        return torch.zeros(2)
    ang = 2 * math.pi * torch.arange(samples) / samples
    pts = radius * torch.stack([torch.cos(ang), torch.sin(ang)], dim=1)
    return torch.atanh(pts).reshape(-1)


class FactorTopyNet(ChunkedVoxelModel):
    def __init__(self, shapes: list[tuple[int, int, int]], n_voxels: int, selectors: nn.Module, *,
                 bottleneck: int = 128, layer_mode: LayerMode = "learned", space_mode: SpaceMode = "learned",
                 scale_mode: ScaleMode = "learned", space_samples: int = 1, free_lr: float = 1.0,
                 readout_lr: float = 1.0) -> None:
        super().__init__()
        self.free_lr, self.readout_lr = free_lr, readout_lr
        self.n_voxels = n_voxels
        self.n_layers = len(shapes)
        self.layer_mode, self.space_mode, self.scale_mode = layer_mode, space_mode, scale_mode
        self.space_samples = space_samples if space_mode == "learned" else 1
        grids: dict[tuple[int, int], list[int]] = {}
        for i, (_, h, w) in enumerate(shapes):
            grids.setdefault((h, w), []).append(i)
        self.groups = list(grids.values())  #: layers sharing a local grid, sampled together
        self.align_local = nn.ModuleList([nn.Conv2d(c, bottleneck, 1, bias=False) for c, _, _ in shapes])
        self.align_global = nn.ModuleList([nn.Linear(c, bottleneck, bias=False) for c, _, _ in shapes])
        self.selectors = selectors
        self.weight = nn.Parameter(torch.randn(n_voxels, bottleneck) / math.sqrt(bottleneck))
        self.bias = nn.Parameter(torch.zeros(n_voxels))

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Free per-voxel parameters learn faster: one Adam step moves a free logit by about lr, whereas an MLP
        output sums the steps of all its hidden units, so at one lr free selectors (``free_lr``) and the channel
        selector (``readout_lr``) barely leave their start in a few hundred steps. A multiplier of 1 adds no group."""
        own: list[tuple[list[nn.Parameter], float]] = []
        if isinstance(self.selectors, FreeSelectors):
            own.append((list(self.selectors.parameters()), self.free_lr))
        if self.readout_lr != 1.0:
            own.append(([self.weight], self.readout_lr))
        if not own:
            return super().param_groups(lr)
        taken = {id(p) for ps, _ in own for p in ps}
        rest = [p for p in self.parameters() if id(p) not in taken]
        return [{"params": rest, "lr": lr}] + [{"params": ps, "lr": lr * m} for ps, m in own]

    # ------------------------------------------------------------------ selectors
    def layer_weights(self, vox: slice) -> torch.Tensor:
        n = vox.stop - vox.start
        if self.layer_mode == "uniform":
            return torch.full((n, self.n_layers), 1.0 / self.n_layers, device=self.weight.device)
        return torch.softmax(self.selectors("layer", vox), dim=-1)

    def space(self, vox: slice) -> torch.Tensor:
        """``Vc × K × 2`` sampling coordinates in [−1, 1] (x, y), as grid_sample's."""
        n = vox.stop - vox.start
        if self.space_mode == "learned":
            return torch.tanh(self.selectors("space", vox)).view(n, self.space_samples, 2)
        return torch.zeros(n, 1, 2, device=self.weight.device)

    def scale(self, vox: slice) -> torch.Tensor:
        n = vox.stop - vox.start
        if self.scale_mode == "learned":
            return torch.sigmoid(self.selectors("scale", vox)).view(n)
        return torch.full((n,), 0.5, device=self.weight.device)

    # ------------------------------------------------------------------ forward
    def shared(self, batch: list[LayerTokens]) -> list[torch.Tensor]:
        """Aligned tokens: per group of layers with one grid, their local maps stacked on channels
        (``N × (L_g·D) × H × W``, so one bilinear matrix samples them all), then the global tokens ``L×N×D``."""
        local = [a(t.local) for a, t in zip(self.align_local, batch, strict=True)]  # N×D×H×W each
        glob = torch.stack([a(t.global_) for a, t in zip(self.align_global, batch, strict=True)])  # L×N×D
        if self.space_mode == "mean":
            return [torch.stack([x.mean(dim=(2, 3)) for x in local]), glob]
        return [torch.cat([local[i] for i in g], dim=1) for g in self.groups] + [glob]

    def readout(self, shared: list[torch.Tensor], vox: slice) -> torch.Tensor:
        """ŷ = Σ_l Σ_d [s·w_l·B_l g_l + (1−s)·w_l·sample(A_l L_l, p)]_d c_d + b, contracted layer by layer
        against the voxel's readout so no ``N × D × voxels`` feature tensor is formed for the global part."""
        w = self.layer_weights(vox)  # Vc×L
        s = self.scale(vox)  # Vc
        c = self.weight[vox]  # Vc×D
        vc = w.shape[0]
        per_layer = torch.einsum("lnd,vd->lnv", shared[-1], c)  # global token readout, L×N×Vc
        pred = (per_layer * (w * s[:, None]).T.unsqueeze(1)).sum(0)
        coef = w * (1 - s)[:, None]  # Vc×L: weight of each layer's local sample
        if self.space_mode == "mean":
            per_layer = torch.einsum("lnd,vd->lnv", shared[0], c)
            return pred + (per_layer * coef.T.unsqueeze(1)).sum(0) + self.bias[vox]
        points = self.space(vox)  # Vc×K×2
        for layers, maps in zip(self.groups, shared[:-1], strict=True):
            m = (coef[:, layers, None] * c[:, None, :]).reshape(vc, -1).T  # (L_g·D)×Vc
            pred = pred + sampled_readout(maps, m, bilinear_matrix(points, maps.shape[-2], maps.shape[-1]))
        return pred + self.bias[vox]

    def regulariser(self, vox: slice) -> torch.Tensor | None:
        """Normalised negative entropy of the layer selector: early on it keeps selections soft, so voxels
        do not all collapse onto the layer that is easiest to fit first (the deepest)."""
        if self.layer_mode != "learned" or self.n_layers < 2:
            return None
        w = self.layer_weights(vox)
        return (w * torch.log(w + 1e-8)).sum(-1).mean() / math.log(self.n_layers)

    # ------------------------------------------------------------------ what was selected
    @torch.no_grad()
    def selections(self, chunk: int = 8192) -> Selections:
        lw, sp, sc = [], [], []
        for vox in voxel_chunks(self.n_voxels, chunk):
            lw.append(self.layer_weights(vox).cpu())
            sp.append(self.space(vox).cpu())
            sc.append(self.scale(vox).cpu())
        return Selections(
            layer_weights=torch.cat(lw).double().numpy(),
            space=((torch.cat(sp) + 1) / 2).numpy() if self.space_mode == "learned" else None,
            scale=torch.cat(sc).numpy() if self.scale_mode == "learned" else None,
        )


def selector_outputs(n_layers: int, layer_mode: LayerMode, space_mode: SpaceMode, scale_mode: ScaleMode,
                     samples: int) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    """Which selector heads the variant learns (with output sizes) and their starting logits."""
    outs: dict[str, int] = {}
    init: dict[str, torch.Tensor] = {}
    if layer_mode == "learned":
        outs["layer"] = n_layers
    if space_mode == "learned":
        outs["space"] = 2 * samples
        init["space"] = space_init(samples)
    if scale_mode == "learned":
        outs["scale"] = 1
    return outs, init


def coords_of(voxels: object, columns: tuple[str, ...] = ("x", "y", "z")) -> np.ndarray | None:
    """The voxel table's coordinates, or None when a column is missing or not finite."""
    cols = getattr(voxels, "columns", ())
    if not all(c in cols for c in columns):
        return None
    xyz = np.asarray(voxels[list(columns)], dtype=np.float64)  # type: ignore[index]
    return xyz if np.isfinite(xyz).all() else None
