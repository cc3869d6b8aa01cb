"""The Algonauts 2019 RSA score with noise ceilings, bootstrap CIs and permutation p-values.

Per ROI: r_s = corr(upper(model RDM used for subject s), upper(subject s's RDM)) with
Spearman (default), Pearson or Kendall τa; score = mean_s r_s² (Cichy et al. 2019);
normalised = 100 · score / upper noise ceiling, the devkit's scale (``testSub_fmri.py`` divides
by the published ceiling, which is the upper bound: mean_s r²(subject s, mean of all subjects));
the ``ceiling`` column holds that upper bound and ``extra.lower_ceiling`` / ``extra.norm_lower``
the lower bound (each subject vs the mean of the others) and the score as % of it.
p-value = one-sided one-sample t-test of r_s > 0 across subjects. The ROI "mean" row averages
raw and normalised scores over ROIs (the challenge score averages EVC and IT).

Held-out images (:attr:`RDMTargets.folds`): a ROI is scored on each fold's block of test images among
themselves and r_s² (and each ceiling) is averaged over folds before the mean over subjects; the
number of pairs each fold scores is in ``extra.pairs_per_fold``.

Uncertainty: by default a percentile bootstrap over subjects (the per-subject values are resampled;
nearly unbiased for a mean, so the interval contains its estimate). ``ci_over: stimuli`` is the
bias-corrected (BC) bootstrap over stimuli (rows and columns resampled together, each image set or
fold block separately): duplicated images make zero-distance pairs that bias every replicate
(Schütt et al. 2023), so the interval can miss its estimate — the row then says so in
``extra.ci_note``. The normalised CI is the raw CI over the fixed upper ceiling (the devkit treats
the ceiling as a constant). Permutation test: relabel the model RDM's stimuli within each image
set or block (statistic: mean_s r_s; one permutation set shared by all ROIs of an image set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.contracts import HeadOutput, Metric, MetricContext, RDMTargets, Score, Targets
from harness.errors import DataError
from harness.kit.scoring import upper
from harness_metrics.rdm_compare import (
    COMPARATORS,
    Comparator,
    condensed_index,
    pair_weights,
    permuted_positions,
    weighted_pearson_rows,
)
from harness_metrics.specs import RSA_R2, RSAArgs
from harness_metrics.uncertainty import bc_ci, percentile_ci, permutation_p

_PERM_BATCH = 64


def _pool(su: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out pools (S×P) and the all-subject pool (P) of condensed RDMs."""
    x = stats.rankdata(su, axis=-1) if how == "rank" else su
    tot = x.sum(0)
    return (tot - x) / (len(x) - 1), tot / len(x)


class _ROIData:
    """One ROI's condensed RDMs prepared once for the comparator, then re-scored under weights."""

    def __init__(self, comp: Comparator, model_u: np.ndarray, subj_u: np.ndarray, pool: str) -> None:
        self.comp = comp
        loo, allp = _pool(subj_u, pool)
        self.model_u, self.subj_u = model_u, subj_u
        self.pm, self.ps = comp.prepare(model_u), comp.prepare(subj_u)
        self.ploo, self.pall = comp.prepare(loo), comp.prepare(allp[None])

    def stats(self, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per subject: model r, lower-ceiling r, upper-ceiling r (entries counted ``w`` times)."""
        c = self.comp
        if not c.linear:
            n = len(self.subj_u)
            pall = np.repeat(self.pall, n, axis=0)
            return c.rows(self.pm, self.ps, w), c.rows(self.ploo, self.ps, w), c.rows(pall, self.ps, w)
        w = np.ones(self.subj_u.shape[1]) if w is None else np.asarray(w, np.float64)
        keep = w > 0  # pairs not drawn weigh nothing: drop them before ranking
        wk = w[keep]
        vs = c.weighted_view(self.ps, w, keep)
        return (weighted_pearson_rows(c.weighted_view(self.pm, w, keep), vs, wk),
                weighted_pearson_rows(c.weighted_view(self.ploo, w, keep), vs, wk),
                weighted_pearson_rows(c.weighted_view(self.pall, w, keep), vs, wk))

    def permutation_null(self, positions: list[np.ndarray]) -> np.ndarray:
        """mean_s r_s for each relabelling of the model's stimuli (``positions`` from :func:`permuted_positions`)."""
        c = self.comp
        if c.linear:
            m = c.view(self.model_u)
            t = c.view(self.subj_u)
            m = (m - m.mean(1, keepdims=True)) / m.std(1, keepdims=True)
            t = (t - t.mean(1, keepdims=True)) / t.std(1, keepdims=True)
            out = []
            for i in range(0, len(positions), _PERM_BATCH):
                idx = np.stack(positions[i : i + _PERM_BATCH])  # B×P
                r = np.einsum("sbp,sp->bs", m[:, idx], t) / t.shape[1]
                out.append(r.mean(1))
            return np.concatenate(out) if out else np.empty(0)
        return np.array([c.rows(c.prepare(self.model_u[:, pos]), self.ps).mean() for pos in positions])


def _ttest_p(r: np.ndarray) -> float | None:
    if len(r) < 2 or np.nanstd(r) == 0:
        return None
    return float(stats.ttest_1samp(r, 0.0, alternative="greater").pvalue)


@dataclass
class _Block:
    """One scored block of a ROI: all its images, or one fold's test images among themselves."""

    data: _ROIData
    group: bytes  #: identity of the images it spans: blocks over the same images share resampling draws
    n: int  #: images in the block


@dataclass
class _Summary:
    """Per subject, averaged over a ROI's blocks: r², lower- and upper-ceiling r², and r."""

    r2: np.ndarray
    lo2: np.ndarray
    up2: np.ndarray
    r: np.ndarray

    @classmethod
    def of(cls, per_block: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> _Summary:
        r, lo, up = (np.stack([b[i] for b in per_block]) for i in range(3))
        return cls(r2=np.mean(r**2, 0), lo2=np.mean(lo**2, 0), up2=np.mean(up**2, 0), r=r.mean(0))


def _ci_note(est: float | None, lo: float | None, hi: float | None, over: str) -> str | None:
    """Why an interval misses its estimate (None when it contains it or there is none)."""
    if est is None or lo is None or hi is None or not np.isfinite(est) or lo <= est <= hi:
        return None
    if over == "stimuli":
        return ("stimulus-bootstrap interval misses the estimate: duplicated images add zero-distance pairs that "
                "shift every replicate (Schütt et al. 2023); use ci_over: subjects")
    return "bootstrap interval misses the estimate: too few finite replicates or a degenerate distribution"


class AlgonautsRSA(Metric):
    """The Algonauts 2019 score: mean over subjects of the squared RDM correlation, % of the upper noise ceiling."""

    spec = RSA_R2
    args: RSAArgs

    def _blocks(self, out: HeadOutput, targets: RDMTargets, rois: list[str], where: str) -> dict[str, list[_Block]]:
        comp = COMPARATORS[self.args.method]
        blocks: dict[str, list[_Block]] = {}
        for roi in rois:
            subj, model = targets.rdms[roi], np.asarray(out.model_rdms[roi], np.float64)  # type: ignore[index]
            if model.shape != subj.shape:
                raise DataError(f"{where}: ROI {roi!r} model RDMs {model.shape} vs subject RDMs {subj.shape}")
            if len(subj) < 2:
                raise DataError(f"{where}: ROI {roi!r} has {len(subj)} subject; the noise ceiling needs ≥ 2")
            n = subj.shape[1]
            images = targets.stimuli_of(roi, n)
            blocks[roi] = []
            for pos in [f.test for f in targets.folds if f.roi == roi] or [np.arange(n)]:
                pos = np.asarray(pos)
                su, mu = upper(subj[:, pos][:, :, pos]), upper(model[:, pos][:, :, pos])
                if not np.isfinite(mu).all():
                    raise DataError(f"{where}: ROI {roi!r}: the model RDM has non-finite entries among the "
                                    f"{len(pos)} images scored together")
                blocks[roi].append(_Block(_ROIData(comp, mu, su, self.args.ceiling_pool),
                                          np.sort(images[pos]).tobytes(), len(pos)))
        return blocks

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        where = f"metric rsa_r2 on {ctx.dataset}"
        if not isinstance(targets, RDMTargets) or out.model_rdms is None:
            raise DataError(f"{where}: needs RDM targets and model RDMs")
        a = self.args
        rois = targets.scored_rois()
        missing = [r for r in rois if r not in out.model_rdms]
        if missing:
            raise DataError(f"{where}: head gave no model RDM for ROI(s) {missing}")
        blocks = self._blocks(out, targets, rois, where)
        n_sub = len(targets.subject_ids)
        rng = np.random.default_rng(ctx.seed)
        # a head that followed the targets' folds says so; anything else is scored as having seen the images
        protocol = dict(out.info.get("protocol") or {"images": "seen", "subjects": "seen"})

        full = {roi: _Summary.of([b.data.stats() for b in bl]) for roi, bl in blocks.items()}
        boot = self._bootstrap(blocks, full, rng, n_sub)
        perm = self._permutations(blocks, rng)

        scores: list[Score] = []
        raws, norms, ceils, mean_r_subj = [], [], [], []
        for roi in rois:
            f = full[roi]
            raw, lower, upper_c = float(np.mean(f.r2)), float(np.mean(f.lo2)), float(np.mean(f.up2))
            norm = 100.0 * raw / upper_c if upper_c > 0 else None
            ci_lo, ci_hi = self._ci(boot[roi][0], raw)  # the raw replicates (boot[roi][1]: normalised)
            n_lo, n_hi = (None, None) if norm is None or ci_lo is None or ci_hi is None else (
                100.0 * ci_lo / upper_c, 100.0 * ci_hi / upper_c)
            null = perm.get(roi)
            bl = blocks[roi]
            extra: dict[str, Any] = {
                "method": a.method, "upper_ceiling": upper_c, "lower_ceiling": lower,
                "norm_lower": 100.0 * raw / lower if lower > 0 else None, "mean_r": float(f.r.mean()),
                "norm_ci_low": n_lo, "norm_ci_high": n_hi, "ci_over": a.ci_over, "n_boot": a.n_boot,
                "n_stimuli": int(sum(b.n for b in bl)), "folds": len(bl),
                "pairs_per_fold": [b.n * (b.n - 1) // 2 for b in bl], **protocol,
                "perm_p": permutation_p(null, float(f.r.mean())) if null is not None else None, "n_perm": a.n_perm,
                "ceiling_pool": a.ceiling_pool, "ci_note": _ci_note(raw, ci_lo, ci_hi, a.ci_over)}
            scores.append(Score(metric=self.spec.id, roi=roi, raw=raw, ceiling=upper_c, normalised=norm, ci_low=ci_lo,
                                ci_high=ci_hi, n=n_sub, p_value=_ttest_p(f.r), extra=extra))
            for s, sid in enumerate(targets.subject_ids):
                scores.append(Score(metric=self.spec.id, roi=roi, raw=float(f.r2[s]), subject=sid, n=1,
                                    extra={"r": float(f.r[s]), "method": a.method, "upper_ceiling_r2": float(f.up2[s]),
                                           "lower_ceiling_r2": float(f.lo2[s]), **protocol}))
            raws.append(raw)
            norms.append(norm if norm is not None else np.nan)
            ceils.append(upper_c)
            mean_r_subj.append(f.r)
        if len(rois) > 1:
            r_mean = np.mean(mean_r_subj, axis=0)
            raw_m, norm_m = float(np.mean(raws)), float(np.mean(norms))
            b_raw = np.mean([boot[roi][0] for roi in rois], axis=0)
            b_norm = np.mean([boot[roi][1] for roi in rois], axis=0)
            ci_lo, ci_hi = self._ci(b_raw, raw_m)
            n_lo, n_hi = self._ci(b_norm, norm_m)
            null = np.mean([perm[roi] for roi in rois], axis=0) if perm else None
            scores.append(Score(metric=self.spec.id, roi="mean", raw=raw_m, ceiling=float(np.mean(ceils)),
                                normalised=norm_m if np.isfinite(norm_m) else None, ci_low=ci_lo, ci_high=ci_hi, n=n_sub,
                                p_value=_ttest_p(r_mean),
                                extra={"method": a.method, "rois": rois, "mean_r": float(r_mean.mean()),
                                       "norm_ci_low": n_lo, "norm_ci_high": n_hi, "ci_over": a.ci_over,
                                       "n_boot": a.n_boot, "n_perm": a.n_perm, **protocol,
                                       "ci_note": _ci_note(raw_m, ci_lo, ci_hi, a.ci_over),
                                       "perm_p": permutation_p(null, float(r_mean.mean())) if null is not None else None}))
        return scores

    def _ci(self, samples: np.ndarray, est: float) -> tuple[float | None, float | None]:
        """Subjects: percentile interval (a mean of per-subject values); stimuli: bias-corrected (BC)."""
        if self.args.ci_over == "subjects":
            return percentile_ci(samples, self.args.ci)
        return bc_ci(samples, est, self.args.ci)

    def _bootstrap(self, blocks: dict[str, list[_Block]], full: dict[str, _Summary], rng: np.random.Generator,
                   n_sub: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per ROI: replicates of the raw score and of the normalised score (the same draws for every ROI)."""
        a = self.args
        res: dict[str, tuple[list[float], list[float]]] = {roi: ([], []) for roi in blocks}
        sizes = {b.group: b.n for bl in blocks.values() for b in bl}
        for _ in range(a.n_boot):
            if a.ci_over == "stimuli":
                # each image set (or fold block) is resampled within itself: its own size, its own draw
                w = {g: pair_weights(np.bincount(rng.integers(0, n, n), minlength=n)) for g, n in sizes.items()}
                reps = {roi: _Summary.of([b.data.stats(w[b.group]) for b in bl]) for roi, bl in blocks.items()}
            else:
                pick = rng.integers(0, n_sub, n_sub)
                reps = {roi: _Summary(f.r2[pick], f.lo2[pick], f.up2[pick], f.r[pick]) for roi, f in full.items()}
            for roi, rep in reps.items():
                raw = float(np.mean(rep.r2))
                res[roi][0].append(raw)
                res[roi][1].append(100.0 * raw / float(np.mean(full[roi].up2)) if np.mean(full[roi].up2) > 0 else np.nan)
        return {roi: (np.asarray(b), np.asarray(n)) for roi, (b, n) in res.items()}

    def _permutations(self, blocks: dict[str, list[_Block]], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per ROI: the null of mean_s r (averaged over its blocks), stimuli relabelled within each image set."""
        if not self.args.n_perm:
            return {}
        sizes = {b.group: b.n for bl in blocks.values() for b in bl}
        positions = {g: [permuted_positions(rng.permutation(n), condensed_index(n)) for _ in range(self.args.n_perm)]
                     for g, n in sizes.items()}
        return {roi: np.mean([b.data.permutation_null(positions[b.group]) for b in bl], axis=0)
                for roi, bl in blocks.items()}
