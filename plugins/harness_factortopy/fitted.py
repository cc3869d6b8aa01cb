"""A saved FactorTopy model back in memory, as the channel readout the analyses read.

The trained head saves its state dict, the token standardisation statistics and its arguments
(:meth:`harness.kit.trained_head.TrainedVoxelHead.save_model`); this rebuilds the same
:class:`FactorTopyNet` from them, so layer selections and aligned tokens come from the very
model that was scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.analysis.readout import ChannelReadout
from harness.artifacts import load_tensors
from harness.errors import DataError
from harness.kit.token_source import _pool
from harness_factortopy.model import CoordSelectors, FactorTopyNet, FreeSelectors, selector_outputs

if TYPE_CHECKING:
    from harness.cache import TokenStore
    from harness_factortopy.specs import FactorTopyArgs


def load_net(arrays: dict[str, np.ndarray], meta: dict[str, Any], args: FactorTopyArgs) -> FactorTopyNet:
    a = args
    shapes = [tuple(int(v) for v in s) for s in meta["shapes"]]
    n_vox = len(meta["units"])
    outs, init = selector_outputs(len(shapes), a.layer_selection, a.space_selection, a.scale_selection, a.space_samples)
    enc = arrays.get("model.selectors.encoding")
    selectors = (CoordSelectors(torch.from_numpy(enc), outs, a.mlp_hidden, init) if enc is not None
                 else FreeSelectors(n_vox, outs, init))
    net = FactorTopyNet(shapes, n_vox, selectors, bottleneck=a.bottleneck, layer_mode=a.layer_selection,
                        space_mode=a.space_selection, scale_mode=a.scale_selection, space_samples=a.space_samples)
    state = {k.removeprefix("model."): torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("model.")}
    net.load_state_dict(state)
    return net.eval()


def fitted_readout(path: Path, tokens: TokenStore, args_type: type[FactorTopyArgs]) -> ChannelReadout:
    arrays, meta = load_tensors(path)
    if meta.get("plugin") != "factortopy":
        raise DataError(f"{path}: saved by head plugin {meta.get('plugin')!r}, not factortopy")
    layers = tuple(meta["layers"])
    if tuple(tokens.layers) != layers:
        raise DataError(f"{path}: model was fitted on layers {list(layers)}, the token cache has {list(tokens.layers)}")
    net = load_net(arrays, meta, args_type(**meta["args"]))
    with torch.no_grad():
        lw = net.layer_weights(slice(0, net.n_voxels)).double().numpy()
    grid = meta.get("grid")
    stats = [(torch.from_numpy(arrays[f"tokens.{i}.local_mu"]), torch.from_numpy(arrays[f"tokens.{i}.local_sd"]),
              torch.from_numpy(arrays[f"tokens.{i}.pcs"]) if f"tokens.{i}.pcs" in arrays else None)
             for i in range(len(layers))]
    out_hw = max((tuple(s[1:]) for s in meta["shapes"]), key=lambda hw: hw[0] * hw[1])

    @torch.no_grad()
    def aligned_local(idx: np.ndarray) -> np.ndarray:
        """N × L × D × H × W: pooled, standardised and projected onto the layer's principal channels as in
        training, aligned by each layer's A_l, then resampled bilinearly to the finest grid (cell centres keep
        their image position)."""
        idx = np.asarray(idx, np.int64)
        maps = []
        for i, layer in enumerate(layers):
            x = _pool(torch.from_numpy(np.asarray(tokens.local(layer)[idx], np.float32)), grid)
            mu, sd, pcs = stats[i]
            x = (x - mu[:, None, None]) / sd[:, None, None]
            if pcs is not None:
                x = torch.einsum("nchw,ck->nkhw", x, pcs)
            x = net.align_local[i](x)
            if tuple(x.shape[-2:]) != out_hw:
                x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False)
            maps.append(x)
        return torch.stack(maps, 1).numpy()

    return ChannelReadout(unit_ids=list(meta["units"]), rois=list(meta["rois"]), layers=layers,
                          weights=arrays["model.weight"].astype(np.float64), layer_weights=lw,
                          aligned_local=aligned_local)
