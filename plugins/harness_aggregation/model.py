"""Masks over stages at three resolutions, the pooled embedding, and its RDM.

Embedding of one image: for every stage s, its output map ``x_s`` (``C×g×g``) is multiplied by
a per-channel-and-location mask and a per-channel mask, average-pooled to ``pool × pool``,
optionally standardised (``normalize="l2"``: centred and unit L2 norm, per image and stage),
multiplied by the stage's scalar mask, and the stages are concatenated. Every mask starts
at 1 (identity). The predicted dissimilarity of two images is 1 − Pearson r of their embeddings.

With ``normalize="l2"`` and identity masks, r of the concatenation is exactly the mean of the
per-stage r's (each stage block has zero mean and unit norm), so the untrained model is the
uniform average of the stages' RDMs — the referee's first control.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness_aggregation.specs import MaskKind, Normalize

_EPS = 1e-8


class StageAggregator(nn.Module):
    """``forward(feats)``: per-stage ``B×C×g×g`` maps → ``B×D`` embedding."""

    def __init__(self, channels: Sequence[int], grids: Sequence[int], masks: Sequence[MaskKind], pool: int,
                 normalize: Normalize) -> None:
        super().__init__()
        self.channels, self.grids = list(channels), list(grids)
        self.pools = [min(pool, g) for g in grids]
        self.normalize = normalize
        self.kinds = frozenset(masks)
        n = len(channels)
        self.stage = nn.Parameter(torch.ones(n), requires_grad="stage" in self.kinds)
        self.channel = nn.ParameterList(
            [nn.Parameter(torch.ones(c), requires_grad="channel" in self.kinds) for c in channels])
        self.location = nn.ParameterList(
            [nn.Parameter(torch.ones(c, g, g), requires_grad="location" in self.kinds)
             for c, g in zip(channels, grids, strict=True)] if "location" in self.kinds else [])

    @property
    def widths(self) -> list[int]:
        """Embedding dimensions of each stage block."""
        return [c * p * p for c, p in zip(self.channels, self.pools, strict=True)]

    def stage_block(self, s: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``s``'s block before its scalar: masked, pooled, optionally standardised; ``B×C·p²``."""
        if self.location:
            x = x * self.location[s]
        x = x * self.channel[s][:, None, None]
        p = self.pools[s]
        v = (x.mean(dim=(2, 3)) if p == 1 else F.adaptive_avg_pool2d(x, (p, p))).flatten(1)
        if self.normalize == "l2":
            v = v - v.mean(1, keepdim=True)
            v = v / v.norm(dim=1, keepdim=True).clamp_min(_EPS)
        return v

    def prior(self, decay: float, l1: float) -> torch.Tensor:
        """Negative log prior of the learned masks: ``decay`` · mean (m − 1)² over every trained mask entry
        (shrinkage toward the identity) + ``l1`` · mean |m| over the trained channel and location masks (sparsity).
        Means, not sums, so one λ means the same for stage, channel and location masks of any width."""
        zero = self.stage.new_zeros(())
        masks = [self.stage, *self.channel, *self.location]
        trained = [m for m in masks if m.requires_grad]
        if not trained or (decay == 0 and l1 == 0):
            return zero
        out = zero
        if decay:
            out = out + decay * torch.cat([(m - 1).pow(2).flatten() for m in trained]).mean()
        sparse = [m for m in [*self.channel, *self.location] if m.requires_grad]
        if l1 and sparse:
            out = out + l1 * torch.cat([m.abs().flatten() for m in sparse]).mean()
        return out

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.stage_block(s, x) * self.stage[s] for s, x in enumerate(feats)], dim=1)


def correlation_distance(z: torch.Tensor) -> torch.Tensor:
    """``B×B`` matrix of 1 − Pearson r between rows (differentiable)."""
    zc = z - z.mean(1, keepdim=True)
    zn = zc / zc.norm(dim=1, keepdim=True).clamp_min(_EPS)
    return 1.0 - zn @ zn.T


def stage_shares(z: np.ndarray, widths: Sequence[int], channels: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """How much of the embedding's across-image variance each stage (and each channel) carries.

    Rows are standardised as Pearson r sees them (centred, unit norm); the variance of every
    dimension across images is then summed per stage block. Returns the stage shares (sum 1)
    and, per stage, each channel's summed variance (the raw material for channel bootstraps).
    Unlike the raw scalar masks, this is comparable across stages whose features differ in scale.
    """
    z = np.asarray(z, np.float64)
    z = z - z.mean(1, keepdims=True)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), _EPS)
    var = z.var(0)
    per_channel, start = [], 0
    for w, c in zip(widths, channels, strict=True):
        per_channel.append(var[start : start + w].reshape(c, w // c).sum(1))
        start += w
    totals = np.array([pc.sum() for pc in per_channel])
    return totals / max(totals.sum(), _EPS), per_channel
