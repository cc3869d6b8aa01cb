"""The Algonauts 2019 RSA score with noise ceilings, bootstrap CIs and permutation p-values.

Per ROI: r_s = corr(upper(model RDM used for subject s), upper(subject s's RDM)) with
Spearman (default), Pearson or Kendall τa; score = mean_s r_s² (Cichy et al. 2019);
ceiling = the lower RDM noise ceiling on the same squared scale; normalised =
100 · score / ceiling; p-value = one-sided one-sample t-test of r_s > 0 across subjects.
The ROI "mean" row averages raw scores and normalised scores over ROIs (the challenge
score averages EVC and IT).

Uncertainty: a bias-corrected (BC) percentile bootstrap over stimuli (rows and columns resampled together;
ceilings recomputed per replicate) or over subjects, and a permutation test that relabels
the model RDM's stimuli (statistic: mean_s r_s; one permutation set shared by all ROIs).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field
from scipy import stats

from harness.contracts import HeadOutput, Metric, MetricContext, RDMTargets, Score, Targets
from harness.errors import DataError
from harness.kit.scoring import upper
from harness.specs import MODEL_RDMS, RDMS, SCORES, PluginArgs, PluginSpec
from harness_metrics.rdm_compare import (
    COMPARATORS,
    Comparator,
    condensed_index,
    pair_weights,
    permuted_positions,
    weighted_pearson_rows,
)
from harness_metrics.uncertainty import bc_ci, permutation_p

_PERM_BATCH = 64


class RSAArgs(PluginArgs):
    method: Literal["spearman", "pearson", "tau_a"] = "spearman"
    #: how subjects' RDMs are pooled for the ceilings: mean dissimilarity, or mean rank (rsatoolbox, Spearman)
    ceiling_pool: Literal["mean", "rank"] = "mean"
    n_boot: int = Field(500, ge=0)
    ci: float = Field(0.95, gt=0, lt=1)
    ci_over: Literal["stimuli", "subjects"] = "stimuli"
    n_perm: int = Field(1000, ge=0, description="stimulus-label permutations for the p-value (0: none)")


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


class AlgonautsRSA(Metric):
    """The Algonauts 2019 score: mean over subjects of the squared RDM correlation, % of the noise ceiling."""

    spec = PluginSpec(
        id="rsa_r2",
        kind="metric",
        version="2",
        summary="Algonauts 2019 score: mean squared Spearman (or Pearson/τa) r over subjects, % of noise ceiling, "
                "t-test, stimulus bootstrap CI, permutation p",
        args=RSAArgs,
        consumes=frozenset({MODEL_RDMS, RDMS}),
        produces=frozenset({SCORES}),
    )
    args: RSAArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        where = f"metric rsa_r2 on {ctx.dataset}"
        if not isinstance(targets, RDMTargets) or out.model_rdms is None:
            raise DataError(f"{where}: needs RDM targets and model RDMs")
        a = self.args
        comp = COMPARATORS[a.method]
        rois = list(targets.rdms)
        missing = [r for r in rois if r not in out.model_rdms]
        if missing:
            raise DataError(f"{where}: head gave no model RDM for ROI(s) {missing}")
        data = {}
        for roi in rois:
            su, mu = upper(targets.rdms[roi]), upper(np.asarray(out.model_rdms[roi], np.float64))
            if mu.shape != su.shape:
                raise DataError(f"{where}: ROI {roi!r} model RDMs {mu.shape} vs subject RDMs {su.shape} (condensed)")
            if len(su) < 2:
                raise DataError(f"{where}: ROI {roi!r} has {len(su)} subject; the noise ceiling needs ≥ 2")
            data[roi] = _ROIData(comp, mu, su, a.ceiling_pool)
        n_stim = targets.rdms[rois[0]].shape[1]
        n_sub = len(targets.subject_ids)
        rng = np.random.default_rng(ctx.seed)

        full = {roi: d.stats() for roi, d in data.items()}
        boot = self._bootstrap(data, full, rng, n_stim, n_sub)
        perm = self._permutations(data, rng, n_stim)

        scores: list[Score] = []
        raws, norms, ceils, mean_r_subj = [], [], [], []
        for roi in rois:
            r, lo_r, up_r = full[roi]
            raw = float(np.mean(r**2))
            lower, upper_c = float(np.mean(lo_r**2)), float(np.mean(up_r**2))
            norm = 100.0 * raw / lower if lower > 0 else None
            b_raw, b_norm = boot[roi]
            ci_lo, ci_hi = bc_ci(b_raw, raw, a.ci)
            n_lo, n_hi = bc_ci(b_norm, norm if norm is not None else np.nan, a.ci)
            null = perm.get(roi)
            extra = {"method": a.method, "upper_ceiling": upper_c, "mean_r": float(r.mean()), "norm_ci_low": n_lo,
                     "norm_ci_high": n_hi, "ci_over": a.ci_over, "n_boot": a.n_boot, "n_stimuli": n_stim,
                     "perm_p": permutation_p(null, float(r.mean())) if null is not None else None, "n_perm": a.n_perm,
                     "ceiling_pool": a.ceiling_pool}
            scores.append(Score(metric=self.spec.id, roi=roi, raw=raw, ceiling=lower, normalised=norm, ci_low=ci_lo,
                                ci_high=ci_hi, n=n_sub, p_value=_ttest_p(r), extra=extra))
            for s, sid in enumerate(targets.subject_ids):
                scores.append(Score(metric=self.spec.id, roi=roi, raw=float(r[s] ** 2), subject=sid, n=1,
                                    extra={"r": float(r[s]), "method": a.method, "lower_ceiling_r": float(lo_r[s])}))
            raws.append(raw)
            norms.append(norm if norm is not None else np.nan)
            ceils.append(lower)
            mean_r_subj.append(r)
        if len(rois) > 1:
            r_mean = np.mean(mean_r_subj, axis=0)
            b_raw = np.mean([boot[roi][0] for roi in rois], axis=0)
            b_norm = np.mean([boot[roi][1] for roi in rois], axis=0)
            norm = float(np.mean(norms))
            ci_lo, ci_hi = bc_ci(b_raw, float(np.mean(raws)), a.ci)
            n_lo, n_hi = bc_ci(b_norm, norm, a.ci)
            null = np.mean([perm[roi] for roi in rois], axis=0) if perm else None
            scores.append(Score(metric=self.spec.id, roi="mean", raw=float(np.mean(raws)), ceiling=float(np.mean(ceils)),
                                normalised=norm if np.isfinite(norm) else None, ci_low=ci_lo, ci_high=ci_hi, n=n_sub,
                                p_value=_ttest_p(r_mean),
                                extra={"method": a.method, "rois": rois, "mean_r": float(r_mean.mean()),
                                       "norm_ci_low": n_lo, "norm_ci_high": n_hi, "ci_over": a.ci_over,
                                       "n_boot": a.n_boot, "n_perm": a.n_perm,
                                       "perm_p": permutation_p(null, float(r_mean.mean())) if null is not None else None}))
        return scores

    def _bootstrap(self, data: dict[str, _ROIData], full: dict, rng: np.random.Generator, n_stim: int,
                   n_sub: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per ROI: bootstrap replicates of the raw score and of the normalised score (same draws for all ROIs)."""
        a = self.args
        res = {roi: ([], []) for roi in data}
        for _ in range(a.n_boot):
            if a.ci_over == "stimuli":
                w = pair_weights(np.bincount(rng.integers(0, n_stim, n_stim), minlength=n_stim))
                reps = {roi: d.stats(w) for roi, d in data.items()}
            else:
                pick = rng.integers(0, n_sub, n_sub)
                reps = {roi: tuple(x[pick] for x in full[roi]) for roi in data}
            for roi, (r, lo_r, _) in reps.items():
                raw, lower = float(np.mean(r**2)), float(np.mean(lo_r**2))
                res[roi][0].append(raw)
                res[roi][1].append(100.0 * raw / lower if lower > 0 else np.nan)
        return {roi: (np.asarray(b), np.asarray(n)) for roi, (b, n) in res.items()}

    def _permutations(self, data: dict[str, _ROIData], rng: np.random.Generator, n_stim: int) -> dict[str, np.ndarray]:
        if not self.args.n_perm:
            return {}
        lookup = condensed_index(n_stim)
        positions = [permuted_positions(rng.permutation(n_stim), lookup) for _ in range(self.args.n_perm)]
        return {roi: d.permutation_null(positions) for roi, d in data.items()}
