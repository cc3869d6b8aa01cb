"""FactorTopy as a harness head; its ablations are registry entries of the same plugin (registry.yaml).

Defaults are sized for a few hundred training stimuli on a CPU (issue 12): at most 90 epochs or
400 steps with early stopping; the entropy weight falls over the first half of the fit to a small
negative value that sharpens the layer selector; a 32-channel bottleneck; each layer's channels
projected onto its 16 principal directions (fit stimuli only), so a 1 280-channel layer cannot win
the layer selector on width alone; local tokens pooled to 8 × 8 as in the paper's code. On the
default synthetic brain these recover the planted hierarchy (slope within 25 % of the planted one),
which the paper-sized settings did not (slope ≈ 0, every ROI on the same deep mix). The paper's
settings (bottleneck 128, all channels, decay over 6 000 steps) are the ``factortopy_paper`` entry.
Seeds are fixed; on CUDA, reductions may run in a different order from run to run, so
GPU runs agree only to float rounding.

Voxel coordinates come from the voxel table's ``x, y, z``. Data without them (e.g.
single neurons) get free per-voxel selectors under ``topology: auto`` — the
"without topology" ablation — and the job's info says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from harness.analysis.readout import ChannelReadout, ReadsChannels
from harness.errors import DataError
from harness.kit.trained_head import PreparedData, Selections, TrainedVoxelHead
from harness.kit.training import ChunkedVoxelModel, Schedule, TrainPlan, linear_decay
from harness_factortopy.model import (
    CoordSelectors,
    FactorTopyNet,
    FreeSelectors,
    coords_of,
    selector_outputs,
)
from harness_factortopy.positional import sinusoidal_encoding
from harness_factortopy.specs import FACTORTOPY, FactorTopyArgs

if TYPE_CHECKING:
    from harness.cache import TokenStore


class FactorTopyHead(TrainedVoxelHead, ReadsChannels):
    spec = FACTORTOPY
    args: FactorTopyArgs

    def _topology(self, data: PreparedData) -> tuple[str, torch.Tensor | None]:
        a = self.args
        if a.topology == "free":
            return "free", None
        xyz = coords_of(data.targets.voxels)
        if xyz is None:
            if a.topology == "coords":
                raise DataError(f"head {self.ctx.entry.name!r}: topology 'coords' needs finite voxel-table columns "
                                "x, y, z; use topology 'free' or 'auto'")
            return "free (voxel table has no x, y, z)", None
        pe = sinusoidal_encoding(xyz, a.pe_features, a.pe_min_wavelength, a.pe_max_wavelength)
        return "coords", torch.from_numpy(pe)

    def build_model(self, data: PreparedData) -> ChunkedVoxelModel:
        a = self.args
        shapes = data.source.shapes()
        n_vox = len(data.targets.voxels)
        outs, init = selector_outputs(len(shapes), a.layer_selection, a.space_selection, a.scale_selection,
                                      a.space_samples)
        self._topology_used, pe = self._topology(data)
        selectors = CoordSelectors(pe, outs, a.mlp_hidden, init) if pe is not None else FreeSelectors(n_vox, outs, init)
        return FactorTopyNet(shapes, n_vox, selectors, bottleneck=a.bottleneck, layer_mode=a.layer_selection,
                             space_mode=a.space_selection, scale_mode=a.scale_selection, space_samples=a.space_samples,
                             free_lr=a.free_selector_lr, readout_lr=a.readout_lr)

    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        assert isinstance(model, FactorTopyNet)
        return model.selections()

    def reg_schedule(self, plan: TrainPlan) -> Schedule:
        a = self.args
        return linear_decay(a.entropy_weight, plan, steps=a.entropy_decay_steps, epochs=a.entropy_decay_epochs,
                            fraction=a.entropy_decay, end=a.entropy_final)

    def extra_info(self, model: ChunkedVoxelModel) -> dict[str, Any]:
        return {"topology": self._topology_used}

    def channel_readout(self, model_file: Path, tokens: TokenStore) -> ChannelReadout:
        from harness_factortopy.fitted import fitted_readout

        return fitted_readout(model_file, tokens, FactorTopyArgs)
