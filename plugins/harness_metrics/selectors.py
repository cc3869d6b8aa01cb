"""Metrics on a head's layer selector (``LAYER_WEIGHTS``): hierarchy slope and selector confidence.

They attach to every head that produces layer weights — per-voxel selectors
(ridge best-layer, FactorTopy softmax) and per-ROI ones (layer-wise RSA) alike. The
scores describe the fitted head, not a held-out prediction, so their bootstrap
resamples *units* (voxels or ROIs): stimuli enter only through the fit itself.
"""

from __future__ import annotations

import numpy as np

from harness.contracts import HeadOutput, Metric, MetricContext, Score, Targets
from harness.errors import DataError
from harness_metrics.hierarchy import (
    DEFAULT_ROI_LEVELS,
    centre_of_mass,
    fit_line,
    normalise_levels,
    selector_confidence,
    unit_levels,
)
from harness_metrics.specs import HIERARCHY_SLOPE, SELECTOR_CONFIDENCE, ConfidenceArgs, HierarchyArgs
from harness_metrics.uncertainty import bootstrap_lines, bootstrap_means, percentile_ci


def _layer_weights(out: HeadOutput, where: str) -> tuple[np.ndarray, list[str], list[str]]:
    if out.layer_weights is None:
        raise DataError(f"{where}: the head produced no layer weights")
    w = np.asarray(out.layer_weights, np.float64)
    if len(out.unit_rois) != len(w) or len(out.unit_ids) != len(w):
        raise DataError(f"{where}: {len(w)} layer-weight rows but {len(out.unit_ids)} unit ids / {len(out.unit_rois)} ROIs")
    return w, [str(u) for u in out.unit_ids], [str(r) for r in out.unit_rois]


def _roi_means(values: np.ndarray, ids: list[str], rois: list[str], metric: str, rng: np.random.Generator,
               n_boot: int, ci: float, extra_for: dict[str, dict] | None = None) -> list[Score]:
    """Mean of a per-unit value per ROI and over all units, with a unit bootstrap CI; per-unit values kept."""
    r = np.asarray(rois)
    out = []
    for roi in ["all", *dict.fromkeys(rois)]:
        mask = np.ones(len(r), bool) if roi == "all" else r == roi
        v = values[mask]
        lo, hi = percentile_ci(bootstrap_means(rng, v, n_boot), ci) if n_boot and v.size > 1 else (None, None)
        units = {} if roi == "all" else {u: float(x) for u, x, m in zip(ids, values, mask, strict=True) if m}
        out.append(Score(metric=metric, roi=roi, raw=float(v.mean()), ci_low=lo, ci_high=hi, n=int(v.size),
                         extra=(extra_for or {}).get(roi, {}), units=units))
    return out


class HierarchySlope(Metric):
    """FactorTopy Table 2: layer-selector depth per unit regressed on its ROI's ideal hierarchy level."""

    spec = HIERARCHY_SLOPE
    args: HierarchyArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        a = self.args
        where = f"metric hierarchy_slope on {ctx.dataset}/{ctx.subject}"
        w, ids, rois = _layer_weights(out, where)
        com = centre_of_mass(w)
        level_map = a.roi_levels or getattr(targets, "roi_levels", None) or DEFAULT_ROI_LEVELS
        levels = unit_levels(rois, level_map)
        rng = np.random.default_rng(ctx.seed)
        known = sorted({r for r in rois if r in level_map})
        depth = _roi_means(com, ids, rois, "depth", rng, a.n_boot, a.ci,
                           {r: {"level": float(level_map[r])} for r in known})
        ok = np.isfinite(levels)
        if len({float(level_map[r]) for r in known}) < 2:
            # a one-area dataset has no hierarchy: say so in the row rather than failing the job's other metrics
            reason = f"ROIs {sorted(set(rois))} span fewer than two hierarchy levels ({level_map})"
            return [Score(metric=self.spec.id, roi="all", raw=float("nan"), n=int(ok.sum()), extra={"reason": reason}),
                    *depth]
        x = normalise_levels(levels) if a.normalise_levels else levels
        x, y = x[ok], com[ok]
        fit = fit_line(x, y)
        lo_hi = {"slope": (None, None), "intercept": (None, None), "r2": (None, None)}
        if a.n_boot and x.size > 2:
            reps = bootstrap_lines(rng, x, y, a.n_boot)
            lo_hi = {k: percentile_ci(v, a.ci) for k, v in zip(("slope", "intercept", "r2"), reps, strict=True)}
        common = {"levels": {r: float(level_map[r]) for r in known}, "normalised_levels": a.normalise_levels,
                  "n_unlevelled": int((~ok).sum()), "n_layers": int(w.shape[1]), "n_boot": a.n_boot}
        rows = [Score(metric=self.spec.id, roi="all", raw=fit.slope, ci_low=lo_hi["slope"][0], ci_high=lo_hi["slope"][1],
                      n=int(ok.sum()), extra={**common, "intercept": fit.intercept, "r2": fit.r2}),
                Score(metric="intercept", roi="all", raw=fit.intercept, ci_low=lo_hi["intercept"][0],
                      ci_high=lo_hi["intercept"][1], n=int(ok.sum()), extra=common),
                Score(metric="r2", roi="all", raw=fit.r2, ci_low=lo_hi["r2"][0], ci_high=lo_hi["r2"][1], n=int(ok.sum()),
                      extra=common)]
        return rows + depth


class SelectorConfidence(Metric):
    """1 − normalised entropy of each unit's layer selector, averaged per ROI (1: one layer; 0: uniform)."""

    spec = SELECTOR_CONFIDENCE
    args: ConfidenceArgs

    def score(self, out: HeadOutput, targets: Targets, ctx: MetricContext) -> list[Score]:
        w, ids, rois = _layer_weights(out, f"metric selector_confidence on {ctx.dataset}/{ctx.subject}")
        conf = selector_confidence(w)
        rng = np.random.default_rng(ctx.seed)
        return _roi_means(conf, ids, rois, self.spec.id, rng, self.args.n_boot, self.args.ci)
