"""Figure 1: the leaderboard per dataset × ROI, pretrained nets beside their random-init twins."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.report.common import bar_order, primary_metric, roi_levels, roi_order, twins
from harness.report.figure import CI_LEVEL, RANDOM_COLOUR, Context, Plot, Section, new_figure, omitted, span

KEY, TITLE = "leaderboard", "Leaderboard: scores per dataset × ROI with 95 % CIs"

SQL = """
SELECT dataset, roi, metric, backbone, head, random_init, raw, ci_low, ci_high, normalised,
       norm_ci_low, norm_ci_high, ceiling, n_subjects, n
FROM leaderboard
"""


def build(ctx: Context) -> Section:
    lb = ctx.reader.query(SQL)
    if lb.empty:
        return omitted(KEY, TITLE, "no scored jobs in the database yet (run `harness run` first)")
    twin_of = twins(ctx.reader)
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    captions = []
    for dataset, d in lb.groupby("dataset", sort=True):
        metric = primary_metric(d["metric"])
        if metric is None:
            continue
        d = d[d["metric"] == metric]
        normalised = bool(d["normalised"].notna().all())
        value, lo, hi = ("normalised", "norm_ci_low", "norm_ci_high") if normalised else ("raw", "ci_low", "ci_high")
        rois = roi_order(str(dataset), list(d["roi"]), levels)
        # one bar order per dataset (best pretrained first over all ROIs, each twin right under it) so the panels
        # share their y axis and the labels are written once per row of panels
        order = bar_order(d.groupby(["backbone", "head", "random_init"], as_index=False)[value].mean(), twin_of, value)
        labels = [f"{b} · {h}" for b, h in zip(order["backbone"], order["head"], strict=True)]
        ncols = min(3, len(rois))
        nrows = math.ceil(len(rois) / ncols)
        fig = new_figure(3.0 * ncols + 2.4, (0.24 * len(order) + 0.9) * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        plotted = []
        for ax, roi in zip(axes, rois, strict=False):
            rows = order[["backbone", "head", "random_init"]].merge(d[d["roi"] == roi], how="left",
                                                                   on=["backbone", "head", "random_init"])
            y = np.arange(len(rows))[::-1]
            colours = [RANDOM_COLOUR if r else "C0" for r in rows["random_init"].astype(bool)]
            v = rows[value].to_numpy(float)
            err = np.vstack([v - rows[lo].to_numpy(float), rows[hi].to_numpy(float) - v])
            err = np.where(np.isfinite(err), np.abs(err), 0.0)
            ax.barh(y, np.nan_to_num(v), color=colours, edgecolor="black", linewidth=0.4)
            ax.errorbar(np.nan_to_num(v), y, xerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
            ceiling = 100.0 if normalised else (float(rows["ceiling"].mean()) if rows["ceiling"].notna().any() else None)
            if ceiling is not None:
                ax.axvline(ceiling, color="firebrick", linestyle="--", linewidth=1)
            ax.set_yticks(y, labels, fontsize=7)
            ax.set_title(f"{dataset} · {roi}", fontsize=9)
            ax.axvline(0, color="black", linewidth=0.5)
            ax.tick_params(axis="x", labelsize=7)
            plotted.append(rows.assign(plotted=v, plotted_lo=rows[lo], plotted_hi=rows[hi], y=y))
        for ax in axes[len(rois):]:
            ax.set_visible(False)
        for ax in axes[max(0, len(rois) - ncols):len(rois)]:
            ax.set_xlabel(f"{metric} ({'% of noise ceiling' if normalised else 'raw'})", fontsize=8)
        handles = [Patch(color="C0", label="pretrained"), Patch(color=RANDOM_COLOUR, label="random init (control)"),
                   Line2D([], [], color="firebrick", linestyle="--", label="noise ceiling")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7, frameon=False)
        sec.plots.append(Plot(str(dataset), fig))
        sec.data[str(dataset)] = pd.concat(plotted, ignore_index=True)
        captions.append(f"<b>{escape(str(dataset))}</b>: {escape(str(metric))}, {'in % of the noise ceiling' if normalised else 'raw (no ceiling recorded)'}; "
                        f"n = {span(d['n'])} per score (its <code>n</code>: voxels for voxel scores, subjects for RDM scores), averaged over {span(d['n_subjects'])} subject job(s)")
    if not sec.plots:
        return omitted(KEY, TITLE, f"no rows of a primary metric ({', '.join(('pearson.mean', 'algonauts_r2', 'pearson'))})")
    sec.caption = (
        "Horizontal bars: each backbone × head's score per ROI, the dataset's primary metric; grey bars are the "
        "random-weight controls, drawn right under their pretrained twins (same plugin and arguments in the "
        "<code>entries</code> table). "
        "The dashed red line is the noise ceiling (100 % when normalised). Error bars: "
        f"{CI_LEVEL} seeded bootstrap CIs over test stimuli as each metric records them (percentile for voxel r, "
        "bias-corrected percentile for the Algonauts 2019 score), averaged over subject jobs as in the "
        "<code>leaderboard</code> view. " + "; ".join(captions) + ".")
    return sec
