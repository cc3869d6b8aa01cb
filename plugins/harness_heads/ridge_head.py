"""Per-layer ridge regression: the single-best-layer grid search of past challenge winners.

For every layer, a closed-form ridge with a per-voxel alpha (efficient
leave-one-out over the grid) is fit on the training split minus a validation
fold; each voxel keeps the layer that predicts its validation responses best, then
that layer is refit on all training stimuli. ``layer_mode="concat"`` instead fits
one ridge on all layers concatenated.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from harness.contracts import HeadInput, HeadOutput, TokenStore, VoxelHead, VoxelTargets
from harness.kit.scoring import pearson_columns
from harness_heads.features import layer_matrix, standardise
from harness_heads.specs import RIDGE, RidgeArgs


class RidgeHead(VoxelHead):
    spec = RIDGE
    args: RidgeArgs

    def _fit(self, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from harness.kit.ridge import RidgeCV

        x_tr, x_te = standardise(x_tr, x_te)
        model = RidgeCV(alphas=np.asarray(self.args.alphas), cv="loo", backend=self.args.backend)
        model.fit(x_tr, y_tr)
        return model.predict(x_te), np.asarray(model.best_alphas_)

    def fit(self, data: HeadInput, t: VoxelTargets) -> HeadOutput:
        store, a = cast(TokenStore, data.tokens), self.args  # VoxelHead checked it is there
        layers = store.layers
        y = np.asarray(t.responses, np.float32)
        tr, te = np.asarray(t.train_idx), np.asarray(t.test_idx)
        n_vox = y.shape[1]
        if a.layer_mode == "concat":
            x = np.concatenate([layer_matrix(store, layer, a.features, a.pool) for layer in layers], axis=1)
            pred, alphas = self._fit(x[tr], y[tr], x[te])
            weights = np.full((n_vox, len(layers)), 1.0 / len(layers))
            return self._output(layers, pred, weights, alphas, t, {})

        rng = np.random.default_rng(data.seed)
        perm = rng.permutation(len(tr))
        n_val = max(2, round(a.val_fraction * len(tr)))
        fit_i, val_i = tr[np.sort(perm[n_val:])], tr[np.sort(perm[:n_val])]
        val_r = np.full((len(layers), n_vox), -np.inf)
        mats = {}
        for li, layer in enumerate(layers):
            x = layer_matrix(store, layer, a.features, a.pool)
            mats[layer] = x
            pred_val, _ = self._fit(x[fit_i], y[fit_i], x[val_i])
            r = pearson_columns(pred_val, y[val_i])
            val_r[li] = np.nan_to_num(r, nan=-1.0)
            if data.progress:
                data.progress(f"ridge layer {layer}", (li + 1) / (len(layers) + 1))
        best = val_r.argmax(0)
        pred = np.zeros((len(te), n_vox), np.float32)
        alphas = np.zeros(n_vox)
        for li in np.unique(best):
            cols = np.flatnonzero(best == li)
            x = mats[layers[li]]
            p, al = self._fit(x[tr], y[tr][:, cols], x[te])
            pred[:, cols] = p
            alphas[cols] = al
        weights = np.zeros((n_vox, len(layers)))
        weights[np.arange(n_vox), best] = 1.0
        return self._output(layers, pred, weights, alphas, t, {"val_r": val_r})

    def _output(self, layers: tuple[str, ...], pred: np.ndarray, weights: np.ndarray, alphas: np.ndarray,
                t: VoxelTargets, info: dict) -> HeadOutput:
        ids = [str(v) for v in t.voxels["voxel_id"]]
        rois = [str(r) for r in t.voxels["roi"]]
        sels = [{"unit": u, "roi": r, "selector": "alpha", "layer": None, "layer_index": None, "weight": None,
                 "value": float(al)} for u, r, al in zip(ids, rois, alphas, strict=True)]
        return HeadOutput(layers=layers, predictions=pred, layer_weights=weights, unit_ids=ids, unit_rois=rois,
                          selections=sels, info=info)
