"""Metrics with ceilings and bootstrap CIs (scores carry raw, ceiling and error together)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from harness.contracts import HeadOutput, Metric, MetricContext, RDMTargets, Score, Targets, VoxelTargets
from harness.errors import DataError
from harness.hookspecs import hookimpl
from harness.scoring import pearson_columns, spearman_many, upper
from harness.specs import MODEL_RDMS, RDMS, SCORES, VOXEL_PREDICTIONS, VOXELS, PluginArgs, PluginSpec


class PearsonArgs(PluginArgs):
    n_boot: int = 200
    ci: float = 0.95


def _ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


class VoxelPearson(Metric):
    """Pearson r per voxel on test stimuli; per ROI median (main) and mean, ceiling-normalised."""

    spec = PluginSpec(
        id="pearson",
        kind="metric",
        version="1",
        summary="voxel-wise Pearson r on held-out stimuli, per-ROI median and mean, bootstrap CI over stimuli",
        args=PearsonArgs,
        consumes=frozenset({VOXEL_PREDICTIONS, VOXELS}),
        produces=frozenset({SCORES}),
    )
    args: PearsonArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        if not isinstance(targets, VoxelTargets) or out.predictions is None:
            raise DataError("pearson metric needs voxel targets and predictions")
        y = np.asarray(targets.responses)[targets.test_idx]
        p = np.asarray(out.predictions)
        r = pearson_columns(p, y)
        rng = np.random.default_rng(ctx.seed)
        boots = [rng.integers(0, len(y), len(y)) for _ in range(self.args.n_boot)]
        rois = np.asarray(targets.voxels["roi"]).astype(str)
        groups = {"all": np.ones(len(rois), bool)} | {roi: rois == roi for roi in dict.fromkeys(rois)}
        r_boot = np.stack([pearson_columns(p[b], y[b]) for b in boots])  # B×V
        ceil = targets.noise_ceiling_r
        scores = []
        for roi, mask in groups.items():
            for stat, fn, name in ((np.nanmedian, np.nanmedian, self.spec.id), (np.nanmean, np.nanmean, "mean")):
                raw = float(fn(r[mask]))
                lo, hi = _ci(fn(r_boot[:, mask], axis=1), self.args.ci)
                c = float(stat(ceil[mask])) if ceil is not None else None
                scores.append(Score(metric=name, roi=roi, raw=raw, ceiling=c,
                                    normalised=raw / c if c else None, ci_low=lo, ci_high=hi, n=int(mask.sum())))
        return scores


class RSAArgs(PluginArgs):
    n_boot: int = 1000
    ci: float = 0.95


def noise_ceiling_rdm(subj_u: np.ndarray) -> tuple[float, float]:
    """(lower, upper) R² ceilings: each subject vs the mean of the others / of all (Spearman, squared, averaged)."""
    n = len(subj_u)
    mean_all = subj_u.mean(0)
    lower = [spearman_many(np.delete(subj_u, s, 0).mean(0), subj_u[s : s + 1])[0] ** 2 for s in range(n)]
    upper_ = [spearman_many(mean_all, subj_u[s : s + 1])[0] ** 2 for s in range(n)]
    return float(np.mean(lower)), float(np.mean(upper_))


class AlgonautsRSA(Metric):
    """The Algonauts 2019 score: mean over subjects of the squared Spearman r of upper triangles."""

    spec = PluginSpec(
        id="rsa_r2",
        kind="metric",
        version="1",
        summary="Algonauts 2019 score: mean squared Spearman r over subjects, % of noise ceiling, t-test",
        args=RSAArgs,
        consumes=frozenset({MODEL_RDMS, RDMS}),
        produces=frozenset({SCORES}),
    )
    args: RSAArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        if not isinstance(targets, RDMTargets) or out.model_rdms is None:
            raise DataError("rsa_r2 metric needs RDM targets and model RDMs")
        rng = np.random.default_rng(ctx.seed)
        scores = []
        per_roi = []
        for roi, subj in targets.rdms.items():
            su = upper(subj)
            mu = upper(out.model_rdms[roi])
            r = np.array([spearman_many(mu[s], su[s : s + 1])[0] for s in range(len(su))])
            r2 = r**2
            lower, upper_c = noise_ceiling_rdm(su)
            boots = rng.integers(0, len(r2), (self.args.n_boot, len(r2)))
            lo, hi = _ci(r2[boots].mean(1), self.args.ci)
            p = float(stats.ttest_1samp(r, 0.0, alternative="greater").pvalue) if len(r) > 1 else None
            raw = float(r2.mean())
            per_roi.append(raw / lower if lower > 0 else np.nan)
            scores.append(Score(metric=self.spec.id, roi=roi, raw=raw, ceiling=lower,
                                normalised=raw / lower if lower > 0 else None, ci_low=lo, ci_high=hi,
                                n=len(r2), p_value=p, extra={"upper_ceiling": upper_c, "mean_spearman": float(r.mean())}))
            for s, sid in enumerate(targets.subject_ids):
                scores.append(Score(metric=self.spec.id, roi=roi, raw=float(r2[s]), subject=sid, n=1,
                                    extra={"spearman": float(r[s])}))
        main = [s for s in scores if not s.subject]
        if len(main) > 1:
            scores.append(Score(metric=self.spec.id, roi="mean", raw=float(np.mean([s.raw for s in main])),
                                ceiling=float(np.mean([s.ceiling or np.nan for s in main])),
                                normalised=float(np.nanmean(per_roi)), n=main[0].n))
        return scores


@hookimpl
def harness_plugins() -> list[type]:
    return [VoxelPearson, AlgonautsRSA]
