"""The contract between a fitted head and the channel analyses: its per-unit channel readout.

Why a contract: the analyses (clustering voxels by the channels they read, channel images)
only need, per unit, a readout vector over a *layer-agnostic* channel space, the unit's layer
selector, and the stimuli's local tokens mapped into that space. FactorTopy has exactly these
(its bottleneck, channel selector and layer selector); any head that can provide them opts in
by subclassing :class:`ReadsChannels`, and the core never needs to know which head it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from harness.cache import TokenStore


@dataclass
class ChannelReadout:
    """A fitted head's units read out of one shared channel space."""

    unit_ids: list[str]
    rois: list[str]
    layers: tuple[str, ...]
    #: units × channels: each unit's linear readout over the shared channels (FactorTopy's channel selector)
    weights: np.ndarray
    #: units × layers, rows sum to 1
    layer_weights: np.ndarray
    #: stimulus indices → ``N × layers × channels × H × W``: local tokens mapped into the shared channel space,
    #: standardised as in training, on one grid for every layer (fractions of the input crop, like ``space_x/y``)
    aligned_local: Callable[[np.ndarray], np.ndarray]

    def layer_depth(self) -> np.ndarray:
        """Per unit: expected layer index under its layer selector, scaled to [0, 1] (0 shallowest)."""
        n = self.layer_weights.shape[1]
        return self.layer_weights @ np.arange(n) / max(1, n - 1)


class ReadsChannels(ABC):
    """Mixin for heads whose saved model yields a :class:`ChannelReadout`."""

    @abstractmethod
    def channel_readout(self, model_file: Path, tokens: TokenStore) -> ChannelReadout:
        """Load the model saved at ``model_file`` (the job's ``model`` artifact) and expose its readout;
        ``tokens`` are the cached tokens of the job's backbone on the dataset's stimuli."""
