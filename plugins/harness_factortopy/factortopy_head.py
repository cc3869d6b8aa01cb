"""FactorTopy as a harness head; its ablations are registry entries of the same plugin (registry.yaml).

Defaults are sized so that ``harness run --all`` stays affordable on a CPU (at most
150 epochs with early stopping, entropy decay over the first half of them, local tokens pooled to
8 × 8 as in the paper's code); the paper's schedule (decay over 6 000 steps) is the
``factortopy_paper`` entry.
Seeds are fixed; on CUDA, reductions may run in a different order from run to run, so
GPU runs agree only to float rounding.

Voxel coordinates come from the voxel table's ``x, y, z``. Data without them (e.g.
single neurons) get free per-voxel selectors under ``topology: auto`` — the
"without topology" ablation — and the job's info says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from harness.analysis.readout import ChannelReadout, ReadsChannels
from harness.errors import DataError
from harness.kit.trained_head import PreparedData, Selections, TrainedVoxelHead
from harness.kit.training import ChunkedVoxelModel, Schedule, TrainArgs, TrainPlan, linear_decay
from harness.specs import LAYER_WEIGHTS, TOKENS, VOXEL_PREDICTIONS, PluginSpec
from harness_factortopy.model import (
    CoordSelectors,
    FactorTopyNet,
    FreeSelectors,
    LayerMode,
    ScaleMode,
    SpaceMode,
    coords_of,
    selector_outputs,
)
from harness_factortopy.positional import sinusoidal_encoding

if TYPE_CHECKING:
    from harness.cache import TokenStore


class FactorTopyArgs(TrainArgs):
    bottleneck: int = Field(128, gt=0)
    #: local tokens are average-pooled to at most grid × grid, as the paper's code resizes them to 8 × 8:
    #: coarse cells give the space selector's bilinear gradient a wide enough basin to find a voxel's location
    grid: int | None = Field(8, gt=0)
    layer_selection: LayerMode = "learned"
    #: learned: sample local tokens at a learned point; centre: at the image centre; mean: global average pool
    space_selection: SpaceMode = "learned"
    #: learned: per-voxel local/global mix; fixed: an even mix for every voxel
    scale_selection: ScaleMode = "learned"
    #: coords: selectors from MLPs of voxel x, y, z; free: per-voxel parameters; auto: coords when the table has them
    topology: Literal["auto", "coords", "free"] = "auto"
    #: learning-rate multiplier of free per-voxel selectors (topology "free"; no effect on the coordinate MLPs)
    free_selector_lr: float = Field(30.0, gt=0)
    #: points each voxel samples (features averaged over them)
    space_samples: int = Field(1, ge=1)
    entropy_weight: float = Field(0.1, ge=0)
    #: share of the planned fit (max_epochs, capped by max_steps) over which the entropy weight decays linearly
    #: to 0: set as a share, the decay ends inside the fit whatever its length, and the fit runs on unregularised
    #: for the rest, while the selectors sharpen (early stopping waits for the decay's end)
    entropy_decay: float = Field(0.5, ge=0, le=1)
    #: epochs over which it decays instead, when given
    entropy_decay_epochs: float | None = Field(None, ge=0)
    #: steps over which it decays instead, when given (the paper: 6 000); wins over epochs
    entropy_decay_steps: int | None = Field(None, ge=0)
    mlp_hidden: int = Field(128, gt=0)
    pe_features: int = Field(16, gt=0)
    pe_min_wavelength: float = Field(0.02, gt=0)
    pe_max_wavelength: float = Field(4.0, gt=0)


class FactorTopyHead(TrainedVoxelHead, ReadsChannels):
    spec = PluginSpec(
        id="factortopy",
        kind="head",
        version="1",
        summary="FactorTopy (Yang, Gee & Shi 2024): topological layer/space/scale/channel selectors on cached tokens",
        args=FactorTopyArgs,
        consumes=frozenset({TOKENS}),
        produces=frozenset({VOXEL_PREDICTIONS, LAYER_WEIGHTS}),
    )
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
                             free_lr=a.free_selector_lr)

    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        assert isinstance(model, FactorTopyNet)
        return model.selections()

    def reg_schedule(self, plan: TrainPlan) -> Schedule:
        a = self.args
        return linear_decay(a.entropy_weight, plan, steps=a.entropy_decay_steps, epochs=a.entropy_decay_epochs,
                            fraction=a.entropy_decay)

    def extra_info(self, model: ChunkedVoxelModel) -> dict[str, Any]:
        return {"topology": self._topology_used}

    def channel_readout(self, model_file: Path, tokens: TokenStore) -> ChannelReadout:
        from harness_factortopy.fitted import fitted_readout

        return fitted_readout(model_file, tokens, FactorTopyArgs)
