"""Figure 5: fine-tune deltas — each derived backbone beside its parent, per ROI, with CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.common import roi_levels, roi_order
from harness.report.figure import CI_LEVEL, Context, Plot, Section, new_figure, omitted

KEY, TITLE = "finetune", "Fine-tune deltas: parent vs derived backbone per ROI"

SQL = """
SELECT f.task, f.dataset, f.head, f.roi, f.metric, f.base, f.derived, f.base_raw, f.derived_raw, f.delta_raw,
       f.base_normalised, f.derived_normalised, f.delta_normalised, f.layer_shift,
       b.ci_low AS base_ci_low, b.ci_high AS base_ci_high, d.ci_low AS derived_ci_low, d.ci_high AS derived_ci_high
FROM finetune_deltas f
LEFT JOIN leaderboard b ON b.dataset = f.dataset AND b.head = f.head AND b.roi = f.roi AND b.metric = f.metric AND b.backbone = f.base
LEFT JOIN leaderboard d ON d.dataset = f.dataset AND d.head = f.head AND d.roi = f.roi AND d.metric = f.metric AND d.backbone = f.derived
"""


def build(ctx: Context) -> Section:
    if not ctx.reader.has("finetune_deltas"):  # the view comes with the fine-tuning plugin's SQL
        return omitted(KEY, TITLE, "this database has no finetune_deltas view (the harness_finetune plugin adds it)")
    df = ctx.reader.query(SQL, filter_on=("dataset",))
    if ctx.reader.backbones:
        df = df[df["base"].isin(ctx.reader.backbones) | df["derived"].isin(ctx.reader.backbones)]
    if df.empty:
        return omitted(KEY, TITLE, "no fine-tuned backbones were scored (run `harness run --finetune TASK`)")
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    # a score metric per dataset (raw scale: CIs live there) and the hierarchy slope (roi 'all')
    for (task, dataset), d in df.groupby(["task", "dataset"], sort=True):
        groups = sorted(d.groupby(["head", "metric", "base", "derived"]).groups)
        fig = new_figure(3.6 * min(len(groups), 4) + 0.6, 2.8 * int(np.ceil(len(groups) / 4)) + 0.4)
        axes = np.atleast_1d(fig.subplots(int(np.ceil(len(groups) / 4)), min(len(groups), 4), squeeze=False)).ravel()
        for ax, (head, metric, base, derived) in zip(axes, groups, strict=False):
            g = d[(d["head"] == head) & (d["metric"] == metric) & (d["base"] == base) & (d["derived"] == derived)]
            rois = roi_order(str(dataset), list(g["roi"]), levels)
            g = g.set_index("roi").reindex(rois)
            x = np.arange(len(rois))
            for off, who, colour in ((-0.2, "base", "C0"), (0.2, "derived", "C1")):
                v = g[f"{who}_raw"].to_numpy(float)
                err = np.abs(np.vstack([v - g[f"{who}_ci_low"].to_numpy(float), g[f"{who}_ci_high"].to_numpy(float) - v]))
                ax.bar(x + off, v, width=0.4, color=colour, yerr=np.where(np.isfinite(err), err, 0), capsize=2,
                       label=f"{base if who == 'base' else derived}")
            for xi, (dr, sh) in enumerate(zip(g["delta_raw"], g["layer_shift"], strict=True)):
                txt = f"Δ {dr:+.3f}" + (f"\nshift {sh:+.2f}" if pd.notna(sh) else "")
                ax.annotate(txt, (xi, 0), fontsize=6, ha="center", va="bottom", xytext=(0, 2), textcoords="offset points")
            ax.set_xticks(x, rois, fontsize=7)
            ax.set_title(f"{task} · {dataset} · {head} · {metric}", fontsize=8)
            ax.legend(fontsize=6)
        for ax in axes[len(groups):]:
            ax.set_visible(False)
        sec.plots.append(Plot(f"{task}:{dataset}", fig))
        sec.data[f"{task}:{dataset}"] = d.reset_index(drop=True)
    sec.caption = (
        "Per task, dataset, head and metric: the parent (base) backbone's raw score per ROI beside its fine-tuned "
        f"(derived) backbone's, each with its {CI_LEVEL} bootstrap CI from the <code>leaderboard</code> view; the hierarchy "
        "metric's rows (ROI <i>all</i>) show the slope shift. Annotations: Δ = derived − base (raw) and the shift of the "
        "ROI's layer centre of mass (> 0: reads deeper after fine-tuning), from the <code>finetune_deltas</code> view. "
        "The view gives no CI of the difference itself (the two scores' bootstrap draws are not paired).")
    return sec
