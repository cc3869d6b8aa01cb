"""Figure 2: the hierarchy — where each ROI reads in the network (BDDN Fig. 5), and its slope."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.report.common import POOLED_ROIS, roi_levels, roi_order
from harness.report.figure import CI_LEVEL, RANDOM_COLOUR, Context, Plot, Section, new_figure, omitted, span

KEY, TITLE = "hierarchy", "Hierarchy: layer centre of mass per ROI and the slope over ROIs"

DEPTH_SQL = """
SELECT dataset, roi, backbone, head, random_init, raw AS depth, ci_low, ci_high, n, n_subjects
FROM leaderboard
WHERE split_part(metric, '.', 2) = 'depth'
  AND split_part(metric, '.', 1) IN (SELECT name FROM entries WHERE plugin = 'hierarchy_slope')
"""

SLOPE_SQL = """
SELECT dataset, backbone, head, random_init, slope, slope_ci_low, slope_ci_high, params_m, n_train_images,
       n_units, n_subjects, reason
FROM hierarchy
"""

#: scaling panels need this many pretrained backbones with the size/data metadata
MIN_SCALING = 3


def _ci(lo: pd.Series, mid: pd.Series, hi: pd.Series) -> np.ndarray:
    err = np.vstack([(mid - lo).to_numpy(float), (hi - mid).to_numpy(float)])
    return np.where(np.isfinite(err), np.abs(err), 0.0)


def build(ctx: Context) -> Section:
    depth = ctx.reader.query(DEPTH_SQL)
    slopes = ctx.reader.query(SLOPE_SQL)
    if depth.empty:
        return omitted(KEY, TITLE, "no per-ROI layer depth rows (the hierarchy metric needs a head that selects layers)")
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    depth = depth[~depth["roi"].isin(POOLED_ROIS)]
    for dataset, d in depth.groupby("dataset", sort=True):
        rois = roi_order(str(dataset), list(d["roi"]), levels)
        heads = sorted(d["head"].unique())
        ncols = min(4, len(heads))
        nrows = math.ceil(len(heads) / ncols)
        fig = new_figure(3.4 * ncols + 0.6, 2.7 * nrows + 0.4)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
        rows = []
        for ax, head in zip(axes, heads, strict=False):
            hd = d[d["head"] == head]
            for i, (bb, b) in enumerate(hd.groupby("backbone", sort=True)):
                b = b.set_index("roi").reindex([r for r in rois if r in set(b["roi"])]).reset_index()
                x = np.array([rois.index(r) for r in b["roi"]], float)
                rnd = bool(b["random_init"].iloc[0])
                s = slopes[(slopes["dataset"] == dataset) & (slopes["backbone"] == bb) & (slopes["head"] == head)]
                label = str(bb)
                if len(s) and pd.notna(s["slope"].iloc[0]):
                    label += f": slope {s['slope'].iloc[0]:.2f} [{s['slope_ci_low'].iloc[0]:.2f}, {s['slope_ci_high'].iloc[0]:.2f}]"
                ax.errorbar(x + 0.04 * i, b["depth"].to_numpy(float), yerr=_ci(b["ci_low"], b["depth"], b["ci_high"]),
                            marker="o", ms=4, capsize=2, linewidth=1.2, label=label,
                            color=RANDOM_COLOUR if rnd else f"C{i % 10}", linestyle="--" if rnd else "-")
                rows.append(b.assign(x=x))
            ax.set_xticks(range(len(rois)), rois, fontsize=8)
            ax.set_ylim(-0.05, 1.05)
            ax.set_title(f"{dataset} · {head}", fontsize=9)
            ax.legend(fontsize=6, loc="upper left")
        for ax in axes[len(heads):]:
            ax.set_visible(False)
        for ax in axes[::ncols]:
            ax.set_ylabel("layer centre of mass (0 = first, 1 = last)", fontsize=7)
        sec.plots.append(Plot(f"{dataset}", fig))
        sec.data[str(dataset)] = pd.concat(rows, ignore_index=True)
    scaling = _scaling(sec, slopes)
    sec.caption = (
        "Per dataset and head, each backbone's layer-selector centre of mass (weight-averaged layer depth, "
        "0 = first tapped layer, 1 = deepest) averaged over each ROI's units, ROIs ordered by their hierarchy level; "
        f"error bars: {CI_LEVEL} percentile bootstrap over units (n = {span(depth['n'])} units per ROI, "
        f"{span(depth['n_subjects'])} subject job(s)). Legend: hierarchy slope (units' depth regressed on their ROI level "
        f"rescaled to [0, 1]; 1 = ideal, 0 = none) with its {CI_LEVEL} bootstrap CI over units, from the "
        "<code>hierarchy</code> view. Grey dashed lines are random-init controls. " + scaling)
    return sec


def _scaling(sec: Section, slopes: pd.DataFrame) -> str:
    """Slope vs log parameters and vs log training images, where ≥ 3 pretrained backbones carry that metadata."""
    s = slopes[~slopes["random_init"].astype(bool) & slopes["slope"].notna() & slopes["params_m"].notna()]
    groups = [(k, g) for k, g in s.groupby(["dataset", "head"], sort=True) if g["backbone"].nunique() >= MIN_SCALING]
    if not groups:
        n = int(s.groupby(["dataset", "head"])["backbone"].nunique().max()) if len(s) else 0
        return (f"Slope vs model size and training data is left out: it needs ≥ {MIN_SCALING} pretrained backbones "
                f"with <code>params_m</code> in their registry meta on one dataset × head (this database has at most {n}).")
    fig = new_figure(7.0, 2.6 * len(groups) + 0.4)
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for (key, g), (a1, a2) in zip(groups, axes, strict=True):
        err = _ci(g["slope_ci_low"], g["slope"], g["slope_ci_high"])
        a1.errorbar(np.log10(g["params_m"] * 1e6), g["slope"], yerr=err, fmt="o", capsize=2)
        a1.set_xlabel("log10 parameters", fontsize=8)
        a1.set_ylabel("hierarchy slope", fontsize=8)
        a1.set_title(" · ".join(key), fontsize=9)
        t = g[g["n_train_images"].notna()]
        a2.errorbar(np.log10(t["n_train_images"].astype(float)), t["slope"], yerr=_ci(t["slope_ci_low"], t["slope"], t["slope_ci_high"]),
                    fmt="o", capsize=2, color="C1")
        a2.set_xlabel("log10 training images", fontsize=8)
        for ax, xs in ((a1, np.log10(g["params_m"] * 1e6)), (a2, np.log10(t["n_train_images"].astype(float)))):
            for x, y, b in zip(xs, g["slope"] if ax is a1 else t["slope"], g["backbone"] if ax is a1 else t["backbone"], strict=True):
                ax.annotate(str(b), (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    sec.plots.append(Plot("scaling", fig))
    sec.data["scaling"] = pd.concat([g.assign(dataset=k[0], head=k[1]) for k, g in groups], ignore_index=True)
    return (f"Last panel: slope vs log10 parameters and vs log10 training images (registry meta), one point per pretrained "
            f"backbone, {CI_LEVEL} bootstrap CIs.")
