"""Brain score for voxel heads: voxel-wise Pearson r on held-out stimuli, raw and noise-normalised.

Raw is what the FactorTopy paper reports (r per voxel, summarised per ROI by median
and mean). Normalised is the Algonauts 2023 challenge score: negative r → 0, then
100 · r² / NC per voxel, capped at 100, where NC is the voxel's noise ceiling on the
R² scale. Every summary gets a seeded bootstrap CI over test stimuli (the voxels
share stimuli, so stimuli are what is resampled): plain percentiles for r, bias-corrected
percentiles for the normalised ROI mean, whose squares inflate under resampling near r = 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.contracts import HeadOutput, Metric, MetricContext, Score, Targets, VoxelTargets
from harness.errors import DataError
from harness.kit.ceilings import nc_to_r, ncsnr_ceiling, noise_normalised_r2, split_half_reliability
from harness.kit.scoring import pearson_columns
from harness_metrics.specs import PEARSON, PearsonArgs
from harness_metrics.uncertainty import bc_ci, bootstrap_indices, percentile_ci


def _dataset_nc(t: VoxelTargets, a: PearsonArgs, seed: int) -> np.ndarray | None:
    return None if t.noise_ceiling_r is None else np.asarray(t.noise_ceiling_r, np.float64) ** 2


def _ncsnr_nc(t: VoxelTargets, a: PearsonArgs, seed: int) -> np.ndarray | None:
    return None if t.repeats is None else ncsnr_ceiling(t.repeats, np.asarray(t.test_idx))


def _split_half_nc(t: VoxelTargets, a: PearsonArgs, seed: int) -> np.ndarray | None:
    return None if t.repeats is None else split_half_reliability(t.repeats, a.n_splits, seed)


#: ceiling source → NC per voxel on the R² scale (None when the dataset lacks what the source needs)
CEILINGS: dict[str, Callable[[VoxelTargets, PearsonArgs, int], np.ndarray | None]] = {
    "dataset": _dataset_nc,
    "ncsnr": _ncsnr_nc,
    "split_half": _split_half_nc,
    "none": lambda t, a, seed: None,
}
AUTO_ORDER = ("dataset", "ncsnr")


def voxel_nc(t: VoxelTargets, args: PearsonArgs, seed: int, where: str) -> tuple[np.ndarray | None, str]:
    """Per-voxel NC (R² scale) and the source it came from."""
    for source in AUTO_ORDER if args.ceiling == "auto" else (args.ceiling,):
        nc = CEILINGS[source](t, args, seed)
        if nc is not None:
            if nc.shape != (t.responses.shape[1],):
                raise DataError(f"{where}: noise ceiling ({source}) has {nc.size} values for {t.responses.shape[1]} voxels")
            return nc, source
        if args.ceiling != "auto" and source != "none":
            raise DataError(f"{where}: ceiling {source!r} needs {'repeats' if source != 'dataset' else 'noise_ceiling_r'}, "
                            "which this dataset does not provide")
    return None, "none"


def _percentile(samples: np.ndarray, observed: float, level: float) -> tuple[float | None, float | None]:
    return percentile_ci(samples, level)


#: ROI summaries: row name (the main one is the plugin id) → (nan-aware reducer over voxels, CI rule for the
#: normalised score). A mean of clipped r² is biased up under resampling → BC; a median's lumpy bootstrap
#: distribution misleads BC (see uncertainty.bc_ci) → plain percentiles.
SUMMARIES: dict[str, tuple[Callable[..., np.ndarray], Callable[..., tuple[float | None, float | None]]]] = {
    "pearson": (np.nanmedian, _percentile),
    "mean": (np.nanmean, bc_ci),
}


class VoxelPearson(Metric):
    """Pearson r per voxel on test stimuli; per ROI median (main row) and mean, raw and Algonauts-2023 normalised."""

    spec = PEARSON
    args: PearsonArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        where = f"metric pearson on {ctx.dataset}/{ctx.subject}"
        if not isinstance(targets, VoxelTargets) or out.predictions is None:
            raise DataError(f"{where}: needs voxel targets and predictions")
        y = np.asarray(targets.responses, np.float64)[np.asarray(targets.test_idx)]
        p = np.asarray(out.predictions, np.float64)
        if p.shape != y.shape:
            raise DataError(f"{where}: predictions {p.shape} but {y.shape} test responses")
        a = self.args
        r = pearson_columns(p, y)
        nc, source = voxel_nc(targets, a, ctx.seed, where)
        nnc = noise_normalised_r2(r, nc) if nc is not None else None
        nc_r = nc_to_r(nc) if nc is not None else None
        rng = np.random.default_rng(ctx.seed)
        boots = bootstrap_indices(rng, len(y), a.n_boot)
        r_boot = np.stack([pearson_columns(p[b], y[b]) for b in boots]) if a.n_boot else np.empty((0, r.size))
        nnc_boot = noise_normalised_r2(r_boot, nc) if nc is not None else None

        rois = np.asarray(targets.voxels["roi"]).astype(str)
        ids = np.asarray(targets.voxels["voxel_id"]).astype(str)
        groups = {"all": np.ones(len(rois), bool)} | {roi: rois == roi for roi in dict.fromkeys(rois)}
        scores = []
        for roi, mask in groups.items():
            finite = mask & np.isfinite(r)
            if not finite.any():  # said in the row, not skipped: every voxel's prediction or response is constant
                scores += [Score(metric=name, roi=roi, raw=float("nan"), n=0,
                                 extra={"reason": "no voxel with a defined r (constant predictions or responses)"})
                           for name in SUMMARIES]
                continue
            for name, (fn, norm_ci) in SUMMARIES.items():
                raw = float(fn(r[mask]))
                lo, hi = percentile_ci(fn(r_boot[:, mask], axis=1), a.ci) if a.n_boot else (None, None)
                extra: dict = {"ceiling_source": source, "n_test": len(y), "n_boot": a.n_boot,
                               "summary": fn.__name__.removeprefix("nan")}
                ceiling = normalised = None
                if nc is not None and np.isfinite(nnc[mask]).any():
                    ceiling = float(fn(nc_r[mask]))
                    normalised = float(fn(nnc[mask]))
                    nlo, nhi = norm_ci(fn(nnc_boot[:, mask], axis=1), normalised, a.ci) if a.n_boot else (None, None)
                    extra |= {"norm_ci_low": nlo, "norm_ci_high": nhi, "nc_r2": float(fn(nc[mask])),
                              "n_with_ceiling": int((mask & (nc > 0)).sum())}
                units = {}
                if a.store_units and roi != "all" and name == self.spec.id:
                    units = {u: float(v) for u, v in zip(ids[finite], r[finite], strict=True)}
                scores.append(Score(metric=name, roi=roi, raw=raw, ceiling=ceiling, normalised=normalised, ci_low=lo,
                                    ci_high=hi, n=int(finite.sum()), extra=extra, units=units))
        return scores
