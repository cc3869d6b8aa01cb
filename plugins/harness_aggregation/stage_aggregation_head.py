"""The learned stage-aggregation head (Gaziv, *Learning to aggregate feature representations*, Algonauts 2019).

Protocol: the dataset's held-out-image folds (:attr:`RDMTargets.folds`, the default for RDM datasets):
per fold one encoder is trained on the training ROIs' RDMs over their training images (several image
sets at once, each with its own subjects) and its RDM (1 − Pearson r of centre-crop embeddings) of the
fold's test images predicts every subject. Without folds (dataset ``images: seen``) subjects are split
into folds (default 5; ``folds: null`` is leave-one-subject-out); each fold's encoder is trained on its
training subjects' RDMs and predicts the held-out subjects on the same images. ``train_roi`` (images
seen only) trains a ROI's encoder on all subjects of another ROI.

Stage weights are each stage's share of the embedding's across-image variance (see
:func:`harness_aggregation.model.stage_shares`), with 95 % CIs across channels (bootstrap),
folds (delete-a-group jackknife) and seeds (t-interval).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from harness.contracts import Backbone, HeadInput, HeadOutput, RDMHead, RDMTargets
from harness.errors import DataError, RegistryError
from harness.kit.scoring import rdm_from_features
from harness_aggregation.crops import stage_bank
from harness_aggregation.model import stage_shares
from harness_aggregation.sources import BankSource, FeatureSource, LiveSource
from harness_aggregation.specs import STAGE_AGGREGATION, AggregationArgs
from harness_aggregation.stats import channel_bootstrap_ci, jackknife_ci, t_ci
from harness_aggregation.training import Fitted, TrainBlock, TrainConfig, fit_blocks


def subject_folds(n_subjects: int, folds: int | None, seed: int) -> list[np.ndarray]:
    """Held-out subject indices per fold: one each (leave-one-out) or a seeded split into ``folds`` groups."""
    if folds is None or folds >= n_subjects:
        return [np.array([s]) for s in range(n_subjects)]
    perm = np.random.default_rng([seed, 3]).permutation(n_subjects)
    return [np.sort(f) for f in np.array_split(perm, folds)]


CI_NAMES = ("ci_low_channels", "ci_high_channels", "ci_low_folds", "ci_high_folds", "ci_low_seeds", "ci_high_seeds")


@dataclass
class RoiFits:
    """All fits of one ROI: the model RDM per subject and each fit's stage shares and scalars (folds × seeds × stages)."""

    rdms: np.ndarray
    shares: np.ndarray
    scalars: np.ndarray
    per_channel: list[np.ndarray] = field(default_factory=list)  #: summed over fits: each stage's per-channel variance
    losses: list[list[float]] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)  #: epoch each fit kept (early stopping only)

    def add(self, fitted: Fitted, fi: int, r: int, emb: np.ndarray) -> None:
        """Record one fit's stage shares, scalars, per-channel variance, losses and kept epoch."""
        sh, pc = stage_shares(emb, fitted.model.widths, fitted.model.channels)
        self.shares[fi, r], self.scalars[fi, r] = sh, fitted.model.stage.detach().cpu().numpy()
        self.per_channel = pc if not self.per_channel else [x + y for x, y in zip(self.per_channel, pc, strict=True)]
        self.losses.append(fitted.losses)
        if fitted.best_epoch is not None:
            self.best_epochs.append(fitted.best_epoch)

    def summary(self, a: AggregationArgs, jackknife: bool, seed: int) -> dict[str, np.ndarray]:
        """Mean stage weights with 95 % CIs across channels, folds (jackknife) and seeds."""
        nan = np.full(self.shares.shape[-1], np.nan)
        f_lo, f_hi = jackknife_ci(self.shares.mean(1), a.ci) if jackknife else (nan, nan)
        s_lo, s_hi = t_ci(self.shares.mean(0), a.ci)
        c_lo, c_hi = channel_bootstrap_ci(self.per_channel, a.n_boot, a.ci, seed)
        return {"mean": self.shares.mean((0, 1)), "scalar": self.scalars.mean((0, 1)),
                "ci_low_channels": c_lo, "ci_high_channels": c_hi, "ci_low_folds": f_lo, "ci_high_folds": f_hi,
                "ci_low_seeds": s_lo, "ci_high_seeds": s_hi}

    def mean_loss(self) -> list[float]:
        """Training loss per epoch, averaged over fits (empty when nothing was trained)."""
        return np.mean(self.losses, axis=0).tolist() if self.losses and self.losses[0] else []


@dataclass
class _Call:
    """State of one ``fit_predict`` call (kept off the head, which the runner may reuse)."""

    total: int  #: fits in this call, for progress
    done: int = 0
    untrained: Fitted | None = None  #: the one model of an ``epochs: 0`` run


class StageAggregationHead(RDMHead):
    spec = STAGE_AGGREGATION
    args: AggregationArgs

    def _stages(self, layers: tuple[str, ...]) -> list[str]:
        if self.args.stages is None:
            return list(layers)
        bad = [i for i in self.args.stages if not -len(layers) <= i < len(layers)]
        if bad:
            raise RegistryError(f"head {self.ctx.entry.name!r}: args.stages {bad} out of range for a backbone "
                                f"with {len(layers)} layers {list(layers)}")
        return [layers[i] for i in sorted({i % len(layers) for i in self.args.stages})]

    def _config(self) -> TrainConfig:
        a = self.args
        return TrainConfig(masks=a.masks, pool=a.pool, normalize=a.normalize, loss=a.loss, alpha=a.alpha, beta=a.beta,
                           lr=a.lr, backbone_lr=a.backbone_lr, batch_size=a.batch_size, epochs=a.epochs,
                           time_sd=a.time_sampling_sd or 0.25, mask_decay=a.mask_decay, mask_l1=a.mask_l1,
                           val_fraction=a.val_fraction)

    def _source(self, data: HeadInput, stages: list[str], device: str) -> FeatureSource:
        a, bb = self.args, cast(Backbone, data.backbone)  # RDMHead checked it is there (live backbone consumed)
        spatial = "location" in a.masks or a.pool > 1
        if a.mode == "all" or a.n_crops is None:
            return LiveSource(bb, data.stimuli, stages, spatial, a.grid, a.crop_fraction, device, finetune=a.mode == "all")
        if data.view_tokens is None:
            raise DataError(f"head {self.ctx.entry.name!r}: the crop bank needs HeadInput.view_tokens (the runner "
                            "passes it with the live backbone)")
        bank = stage_bank(data.view_tokens, len(data.stimuli), n_crops=a.n_crops, crop_fraction=a.crop_fraction,
                          grid=a.grid, seed=data.seed, batch_size=a.extract_batch,
                          progress=(lambda d, t: data.progress("aggregation crop bank", 0.3 * d / t)) if data.progress else None)
        return BankSource(bank, stages, spatial, device)

    def fit(self, data: HeadInput, t: RDMTargets) -> HeadOutput:
        a = self.args
        if t.folds and a.train_roi:
            raise DataError(f"head {self.ctx.entry.name!r}: args.train_roi cannot combine with the dataset's "
                            "held-out-image folds; say what trains what in the dataset's args.predict "
                            "(e.g. {\"92\": [\"118\"]}) or set the dataset's images: seen")
        unknown = sorted({*a.train_roi, *a.train_roi.values()} - set(t.rdms))
        if unknown or any(k == v for k, v in a.train_roi.items()):
            raise DataError(f"head {self.ctx.entry.name!r}: args.train_roi must map ROIs of the dataset "
                            f"({sorted(t.rdms)}) to other ROIs; got {dict(a.train_roi)}")
        n_sub = len(t.subject_ids)
        if n_sub < 2 and not t.folds and not set(t.rdms) <= set(a.train_roi):
            raise DataError(f"head {self.ctx.entry.name!r}: predicting held-out subjects needs at least 2 subjects")
        device = data.device
        layers = cast(Backbone, data.backbone).layers
        stages = self._stages(layers)
        t0 = time.perf_counter()
        source = self._source(data, stages, device)
        t_source = time.perf_counter() - t0
        folds = subject_folds(n_sub, a.folds, data.seed)
        rois = t.scored_rois()
        plan = [(roi, [np.arange(n_sub)] if roi in a.train_roi or t.folds else folds) for roi in rois]
        n_fits = len(t.folds) if t.folds else sum(len(f) for _, f in plan)
        call = _Call(total=n_fits * a.n_seeds)
        weights = np.zeros((len(rois), len(layers)))
        model_rdms: dict[str, np.ndarray] = {}
        sels: list[dict[str, Any]] = []
        info: dict[str, Any] = {"stages": stages, "protocol": t.protocol(),
                                "folds": [] if t.folds else [[t.subject_ids[s] for s in f] for f in folds],
                                "image_folds": [{"roi": f.roi, "n_test": len(f.test),
                                                 "train": {k: len(v) for k, v in f.train.items()}} for f in t.folds],
                                "n_seeds": a.n_seeds, "train_roi": dict(a.train_roi), "stage_weights": {},
                                "time_sampled_rois": [] if a.time_sampling_sd is None else
                                sorted(r for r in t.rdms if a.train_roi.get(r, r) in t.time_rdms),
                                "train_loss": {}, "stage_scalars": {}}
        for ri, (roi, roi_folds) in enumerate(plan):
            if t.folds:
                fits = self._fit_image_folds(source, t, roi, ri, len(stages), device, data, call)
            else:
                fits = self._fit_roi(source, t, roi, roi_folds, ri, len(stages), device, data, call)
            model_rdms[roi] = fits.rdms
            summary = fits.summary(self.args, jackknife=len(fits.shares) > 1 and roi not in a.train_roi, seed=data.seed)
            for si, stage in enumerate(stages):
                li = layers.index(stage)
                weights[ri, li] = summary["mean"][si]
                base = {"unit": roi, "roi": roi, "layer": stage, "layer_index": li}
                sels.append({**base, "selector": "stage_weight", "weight": float(summary["mean"][si]),
                             "value": float(summary["mean"][si])})
                for name in CI_NAMES:
                    val = summary[name][si]
                    if np.isfinite(val):
                        sels.append({**base, "selector": f"stage_weight_{name}", "weight": None, "value": float(val)})
                sels.append({**base, "selector": "stage_scalar", "weight": None, "value": float(summary["scalar"][si])})
            info["stage_weights"][roi] = {
                stage: {"mean": float(summary["mean"][si]),
                        **{f"ci_{src}": [float(summary[f"ci_low_{src}"][si]), float(summary[f"ci_high_{src}"][si])]
                           for src in ("channels", "folds", "seeds")}}
                for si, stage in enumerate(stages)}
            info["stage_scalars"][roi] = summary["scalar"].tolist()
            info["train_loss"][roi] = fits.mean_loss()
            if fits.best_epochs:
                info.setdefault("best_epochs", {})[roi] = fits.best_epochs
        info["ci_methods"] = {"channels": "bootstrap over each stage's channels (percentile)",
                              "folds": "delete-a-group jackknife over the (subject or image) folds' fits",
                              "seeds": "t-interval over seeds (NaN with one seed)"}
        info["timing_s"] = {"features": t_source, "total": time.perf_counter() - t0}
        return HeadOutput(layers=layers, model_rdms=model_rdms, layer_weights=weights, unit_ids=rois, unit_rois=rois,
                          selections=sels, info=info)

    def _fit_roi(self, source: FeatureSource, t: RDMTargets, roi: str, folds: list[np.ndarray], ri: int,
                 n_stages: int, device: str, data: HeadInput, call: _Call) -> RoiFits:
        """Every fold × seed of one ROI; held-out subjects get the fold's seed-averaged model RDM."""
        a, n_sub, n_stim = self.args, len(t.subject_ids), len(data.stimuli)
        src = a.train_roi.get(roi, roi)
        train_rdms = np.asarray(t.rdms[src], np.float64)
        timed = t.time_rdms.get(src) if a.time_sampling_sd is not None else None
        train_idx, pred_idx = t.stimuli_of(src, n_stim), t.stimuli_of(roi, n_stim)
        fits = RoiFits(rdms=np.zeros((n_sub, len(pred_idx), len(pred_idx))),
                       shares=np.zeros((len(folds), a.n_seeds, n_stages)),
                       scalars=np.zeros((len(folds), a.n_seeds, n_stages)))
        for fi, held in enumerate(folds):
            train_subj = np.setdiff1d(np.arange(n_sub), held) if src == roi else np.arange(n_sub)
            for r in range(a.n_seeds):
                block = TrainBlock(train_rdms[train_subj], train_idx, None if timed is None else timed[train_subj])
                fitted = self._fit_one(source, [block], (data.seed, ri, fi, r), device, data, call)
                assert fitted.embedding is not None
                emb = fitted.embedding[pred_idx]
                fits.rdms[held] += rdm_from_features(emb) / a.n_seeds
                fits.add(fitted, fi, r, emb)
        return fits

    def _fit_image_folds(self, source: FeatureSource, t: RDMTargets, roi: str, ri: int, n_stages: int, device: str,
                         data: HeadInput, call: _Call) -> RoiFits:
        """Every held-out-image fold × seed of one ROI: the test block's entries get the fold's seed-averaged RDM."""
        a, n_stim = self.args, len(data.stimuli)
        folds = [f for f in t.folds if f.roi == roi]
        fits = RoiFits(rdms=np.full(t.rdms[roi].shape, np.nan), shares=np.zeros((len(folds), a.n_seeds, n_stages)),
                       scalars=np.zeros((len(folds), a.n_seeds, n_stages)))
        n_sub = len(t.subject_ids)
        for fi, fold in enumerate(folds):
            blocks = []
            for src, pos in fold.train.items():
                timed = t.time_rdms.get(src) if a.time_sampling_sd is not None else None
                blocks.append(TrainBlock(t.rdms[src][:, pos][:, :, pos], t.stimuli_of(src, n_stim)[pos],
                                         None if timed is None else timed[:, :, pos][..., pos]))
            test = np.asarray(fold.test)
            pred_idx = t.stimuli_of(roi, n_stim)[test]
            acc = np.zeros((len(test), len(test)))
            for r in range(a.n_seeds):
                fitted = self._fit_one(source, blocks, (data.seed, ri, fi, r), device, data, call)
                assert fitted.embedding is not None
                emb = fitted.embedding[pred_idx]
                acc += rdm_from_features(emb) / a.n_seeds
                fits.add(fitted, fi, r, emb)
            fits.rdms[np.ix_(np.arange(n_sub), test, test)] = acc
        return fits

    def _fit_one(self, source: FeatureSource, blocks: list[TrainBlock], key: tuple[int, ...], device: str,
                 data: HeadInput, call: _Call) -> Fitted:
        """One training; with ``epochs: 0`` nothing is learned, so one untrained model serves every fold and ROI."""
        if self.args.epochs == 0:
            if call.untrained is None:
                call.untrained = fit_blocks(source, blocks, self._config(), key[0], device)
            fitted = call.untrained
        else:
            seed = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
            fitted = fit_blocks(source, blocks, self._config(), seed, device)
        call.done += 1
        if data.progress:
            data.progress(f"aggregation fit {call.done}/{call.total}", 0.3 + 0.7 * call.done / call.total)
        return fitted
