"""Layer-wise RSA: each layer's model RDM (1 − Pearson r between stimulus features).

With the dataset's held-out-image folds (:attr:`RDMTargets.folds`, the default), each fold's layer is
chosen on the training ROIs' images only (best Spearman r with each training ROI's mean RDM over those
images, averaged over training ROIs) and its RDM of the fold's test images predicts every subject. Without
folds (``images: seen``) the layer is chosen leave-one-subject-out on the other subjects' mean RDM of the
same images, so no subject scores its own choice but the images are shared."""

from __future__ import annotations

from typing import cast

import numpy as np

from harness.contracts import HeadInput, HeadOutput, RDMHead, RDMTargets, TokenStore
from harness.errors import DataError
from harness.kit.scoring import rdm_from_features, spearman_many, upper
from harness_heads.features import layer_matrix
from harness_heads.specs import RSA, RSAArgs


class RSAHead(RDMHead):
    spec = RSA
    args: RSAArgs

    def fit(self, data: HeadInput, t: RDMTargets) -> HeadOutput:
        tokens = cast(TokenStore, data.tokens)  # RDMHead checked it is there
        layers = tokens.layers
        feats = [layer_matrix(tokens, layer, self.args.features, self.args.pool) for layer in layers]
        if t.folds:
            return self._held_out_images(t, layers, feats)
        n_stim = len(feats[0])
        rois = list(t.rdms)
        weights = np.zeros((len(rois), len(layers)))
        out_rdms: dict[str, np.ndarray] = {}
        sels = []
        for ri, roi in enumerate(rois):
            # a ROI may span a subset of the stimuli (joined image sets): model RDMs over exactly those
            idx = t.stimuli_of(roi, n_stim)
            model = np.stack([rdm_from_features(f[idx]) for f in feats])  # L×n×n
            model_u = upper(model)
            subj_u = upper(t.rdms[roi])  # S×P
            n_sub = len(subj_u)
            if n_sub < 2:
                raise DataError(f"ROI {roi!r}: leave-one-subject-out needs at least 2 subjects")
            chosen = np.zeros(n_sub, int)
            for s in range(n_sub):
                train_mean = np.delete(subj_u, s, axis=0).mean(0)
                fits = np.array([spearman_many(train_mean, m_u[None])[0] for m_u in model_u])
                chosen[s] = int(np.nanargmax(fits))
                sels.append({"unit": t.subject_ids[s], "roi": roi, "selector": "layer_loso", "layer": layers[chosen[s]],
                             "layer_index": int(chosen[s]), "weight": 1.0, "value": float(fits[chosen[s]])})
            out_rdms[roi] = model[chosen]
            weights[ri] = np.bincount(chosen, minlength=len(layers)) / n_sub
        return HeadOutput(layers=layers, model_rdms=out_rdms, layer_weights=weights, unit_ids=rois, unit_rois=rois,
                          selections=sels, info={"protocol": t.protocol()})

    def _held_out_images(self, t: RDMTargets, layers: tuple[str, ...], feats: list[np.ndarray]) -> HeadOutput:
        """Per fold: the layer chosen on the training images' RDMs predicts the test block (NaN elsewhere)."""
        n_stim = len(feats[0])
        rdms: dict[str, np.ndarray] = {}  # ROI → L×n×n layer RDMs over that ROI's images, computed once

        def layer_rdms(roi: str) -> np.ndarray:
            if roi not in rdms:
                idx = t.stimuli_of(roi, n_stim)
                rdms[roi] = np.stack([rdm_from_features(f[idx]) for f in feats])
            return rdms[roi]

        rois = t.scored_rois()
        n_sub = len(t.subject_ids)
        out = {roi: np.full(t.rdms[roi].shape, np.nan) for roi in rois}
        weights = np.zeros((len(rois), len(layers)))
        sels = []
        for k, fold in enumerate(t.folds):
            fits = np.zeros(len(layers))
            for src, pos in fold.train.items():
                target = upper(t.rdms[src][:, pos][:, :, pos].mean(0))
                fits += spearman_many(target, upper(layer_rdms(src)[:, pos][:, :, pos]))
            best = int(np.nanargmax(fits))
            pos = np.asarray(fold.test)
            block = layer_rdms(fold.roi)[best][pos][:, pos]
            out[fold.roi][np.ix_(np.arange(n_sub), pos, pos)] = block
            ri = rois.index(fold.roi)
            weights[ri, best] += 1.0
            sels.append({"unit": f"fold{k}", "roi": fold.roi, "selector": "layer_train_images", "layer": layers[best],
                         "layer_index": best, "weight": 1.0, "value": float(fits[best] / len(fold.train))})
        weights /= weights.sum(1, keepdims=True)
        return HeadOutput(layers=layers, model_rdms=out, layer_weights=weights, unit_ids=rois, unit_rois=rois,
                          selections=sels, info={"protocol": t.protocol()})
