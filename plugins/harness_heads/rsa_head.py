"""Layer-wise RSA: each layer's model RDM (1 − Pearson r between stimulus features);
per ROI, the layer is chosen leave-one-subject-out on the other subjects' mean RDM
and used to predict the held-out subject, so no subject scores its own choice."""

from __future__ import annotations

from typing import cast

import numpy as np

from harness.contracts import HeadInput, HeadOutput, RDMHead, RDMTargets, TokenStore
from harness.errors import DataError
from harness.kit.scoring import rdm_from_features, spearman_many, upper
from harness.specs import LAYER_WEIGHTS, MODEL_RDMS, TOKENS, PluginArgs, PluginSpec
from harness_heads.features import FeatureKind, layer_matrix


class RSAArgs(PluginArgs):
    features: FeatureKind = "local"
    #: pool local maps to at most pool×pool (None: the cached grid)
    pool: int | None = None


class RSAHead(RDMHead):
    spec = PluginSpec(
        id="rsa",
        kind="head",
        version="1",
        summary="layer-wise RSA, best layer per ROI chosen leave-one-subject-out",
        args=RSAArgs,
        consumes=frozenset({TOKENS}),
        produces=frozenset({MODEL_RDMS, LAYER_WEIGHTS}),
    )
    args: RSAArgs

    def fit(self, data: HeadInput, t: RDMTargets) -> HeadOutput:
        tokens = cast(TokenStore, data.tokens)  # RDMHead checked it is there
        layers = tokens.layers
        feats = [layer_matrix(tokens, layer, self.args.features, self.args.pool) for layer in layers]
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
                          selections=sels)
