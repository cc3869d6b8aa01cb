"""Base of the gradient-trained token heads: data plumbing around :mod:`harness.kit.training`.

A subclass only builds its :class:`ChunkedVoxelModel` and says what the trained model
selected; splitting, response standardisation, token loading, training, prediction
and the selections table are the same for every such head.

Selections table conventions (``HeadOutput.selections`` rows):

- ``space_x`` / ``space_y``: the image location a voxel reads, as a *fraction of the
  backbone's input image after its preprocessing crop* (0 = left/top edge, 1 =
  right/bottom edge; the centre of token cell ``i`` of an ``H``-cell grid is
  ``(i + 0.5) / H``). ``weight`` is that sample's share when a voxel reads several.
- ``scale``: share of the global token in the voxel's feature (0 = only the local
  token at its location, 1 = only the global token).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch

from harness.artifacts import MODELS_DIR, save_tensors
from harness.contracts import HeadInput, HeadOutput, TokenStore, VoxelHead, VoxelTargets
from harness.errors import DataError
from harness.kit.token_source import Parts, TokenSource
from harness.kit.train_args import auto_pcs
from harness.kit.training import ChunkedVoxelModel, Schedule, TrainArgs, TrainPlan, fit, no_regulariser, predict


@dataclass
class Selections:
    layer_weights: np.ndarray | None = None  #: voxels × layers, rows sum to 1
    space: np.ndarray | None = None  #: voxels × samples × 2 (x, y) image fractions
    scale: np.ndarray | None = None  #: voxels: global-token share


def selection_rows(ids: list[str], rois: list[str], sel: Selections) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    blank = {"layer": None, "layer_index": None}
    if sel.space is not None:
        k = sel.space.shape[1]
        for u, r, pts in zip(ids, rois, sel.space, strict=True):
            for p in pts:
                rows.append({"unit": u, "roi": r, "selector": "space_x", **blank, "weight": 1.0 / k, "value": float(p[0])})
                rows.append({"unit": u, "roi": r, "selector": "space_y", **blank, "weight": 1.0 / k, "value": float(p[1])})
    if sel.scale is not None:
        for u, r, s in zip(ids, rois, sel.scale, strict=True):
            rows.append({"unit": u, "roi": r, "selector": "scale", **blank, "weight": None, "value": float(s)})
    return rows


@dataclass
class PreparedData:
    """What a subclass may look at while building its model."""

    source: TokenSource
    targets: VoxelTargets
    fit_idx: np.ndarray
    val_idx: np.ndarray


class TrainedVoxelHead(VoxelHead):
    """Token head trained by gradient descent with voxel chunking, early stopping and a Model Soup."""

    args: TrainArgs
    #: which tokens the model reads (skips loading the rest)
    parts: ClassVar[Parts] = "both"

    @abstractmethod
    def build_model(self, data: PreparedData) -> ChunkedVoxelModel:
        ...

    @abstractmethod
    def describe(self, model: ChunkedVoxelModel, layers: tuple[str, ...]) -> Selections:
        ...

    def reg_schedule(self, plan: TrainPlan) -> Schedule:
        """The regulariser weight over this fit (``plan``: its planned length, for schedules set as a share of it)."""
        return no_regulariser

    def extra_info(self, model: ChunkedVoxelModel) -> dict[str, Any]:
        return {}

    def fit(self, data: HeadInput, t: VoxelTargets) -> HeadOutput:
        name = self.ctx.entry.name
        a = self.args
        device = data.device
        tr, te = np.asarray(t.train_idx, np.int64), np.asarray(t.test_idx, np.int64)
        rng = np.random.default_rng(data.seed)
        perm = rng.permutation(len(tr))
        n_val = max(2, round(a.val_fraction * len(tr)))
        if len(tr) - n_val < 2:
            raise DataError(f"head {name!r}: {len(tr)} training stimuli are too few for a validation split")
        fit_idx, val_idx = np.sort(tr[perm[n_val:]]), np.sort(tr[perm[:n_val]])

        resp = np.asarray(t.responses, np.float32)
        mu, sd = resp[fit_idx].mean(0), resp[fit_idx].std(0)
        sd[sd < 1e-8] = 1.0
        y = torch.from_numpy((resp - mu) / sd).to(device)

        source = TokenSource.from_store(cast(TokenStore, data.tokens), np.concatenate([tr, te]), fit_idx, device, parts=self.parts,
                                        grid=a.grid, budget_bytes=None if a.preload_gib is None else a.preload_gib * 2**30,
                                        pcs=auto_pcs(a.channel_pcs, len(fit_idx)))
        torch.manual_seed(data.seed)
        model = self.build_model(PreparedData(source, t, fit_idx, val_idx)).to(device)
        result = fit(model, source, y, fit_idx, val_idx, a, data.seed, self.reg_schedule, data.progress)
        pred = predict(model, source, te, a.batch_size, a.voxel_chunk).cpu().numpy() * sd + mu

        layers = source.layers
        sel = self.describe(model, layers)
        ids = [str(v) for v in t.voxels["voxel_id"]]
        rois = [str(r) for r in t.voxels["roi"]]
        info = {**result.info(), "device": device, "tokens_preloaded": source.preloaded,
                "channel_pcs": auto_pcs(a.channel_pcs, len(fit_idx)),
                "grid": [list(s[1:]) for s in source.shapes()], **self.extra_info(model)}
        saved = self.save_model(model, source, ids, rois, mu, sd)
        return HeadOutput(layers=layers, predictions=pred.astype(np.float32), layer_weights=sel.layer_weights,
                          unit_ids=ids, unit_rois=rois, selections=selection_rows(ids, rois, sel), info=info,
                          artifacts={"model": str(saved)})

    def save_model(self, model: ChunkedVoxelModel, source: TokenSource, ids: list[str], rois: list[str],
                   mu: np.ndarray, sd: np.ndarray) -> Path:
        """The fitted weights, token statistics and response scaling as content-addressed safetensors under
        ``$HARNESS_HOME/models`` (see :mod:`harness.artifacts`): analyses read the model the scores came from."""
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update(source.stats())
        tensors["responses.mu"], tensors["responses.sd"] = torch.from_numpy(mu), torch.from_numpy(sd)
        meta = {"head": self.ctx.entry.name, "plugin": self.spec.id, "plugin_version": self.spec.version,
                "args": self.args.model_dump(mode="json"), "layers": list(source.layers), "units": ids, "rois": rois,
                "shapes": [list(s) for s in source.shapes()], "grid": source.grid}
        return save_tensors(tensors, meta, self.ctx.settings.home / MODELS_DIR)
