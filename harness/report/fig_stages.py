"""Figure 4: the aggregation head's stage weights per ROI with their three CI sources, beside the referee's controls."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.common import roi_levels, roi_order
from harness.report.figure import Context, Plot, Section, new_figure, omitted

KEY, TITLE = "stages", "Stage weights of the aggregation head with CIs, and the referee's controls"

SQL = """
SELECT j.dataset, j.backbone, j.head, j.random_init, sel.roi, sel.layer AS stage, sel.layer_index,
       max(sel.value) FILTER (sel.selector = 'stage_weight') AS weight,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_low_channels') AS ci_low_channels,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_high_channels') AS ci_high_channels,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_low_folds') AS ci_low_folds,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_high_folds') AS ci_high_folds,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_low_seeds') AS ci_low_seeds,
       max(sel.value) FILTER (sel.selector = 'stage_weight_ci_high_seeds') AS ci_high_seeds,
       coalesce(TRY_CAST(any_value(e.meta ->> 'control') AS BOOLEAN), false) AS control,
       any_value(e.meta ->> 'description') AS description
FROM selections sel JOIN jobs j USING (job_id) LEFT JOIN entries e ON e.name = j.head AND e.kind = 'head'
WHERE j.status = 'done' AND sel.selector LIKE 'stage_weight%'
GROUP BY ALL
"""

SCORE_SQL = """
SELECT dataset, roi, backbone, head, normalised, norm_ci_low, norm_ci_high FROM leaderboard WHERE metric = 'algonauts_r2'
"""

#: the three CI sources, drawn as offset error bars in these colours
SOURCES = (("channels", "black"), ("folds", "C3"), ("seeds", "C1"))


def build(ctx: Context) -> Section:
    df = ctx.reader.query(SQL)
    if df.empty:
        return omitted(KEY, TITLE, "no aggregation-head jobs (stage_weight selections) in the database")
    scores = ctx.reader.query(SCORE_SQL)
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    for (dataset, bb), d in df.groupby(["dataset", "backbone"], sort=True):
        rois = roi_order(str(dataset), list(d["roi"]), levels)
        heads = sorted(d["head"].unique(), key=lambda h: (bool(d.loc[d["head"] == h, "control"].iloc[0]), h))
        stages = d.drop_duplicates("layer_index").sort_values("layer_index")["stage"].tolist()
        fig = new_figure(max(4.0, 0.9 * len(stages) * len(heads) ** 0.5) * len(rois) + 1.0, 3.0)
        axes = fig.subplots(1, len(rois), sharey=True, squeeze=False)[0]
        width = 0.8 / len(heads)
        for ax, roi in zip(axes, rois, strict=True):
            for hi, head in enumerate(heads):
                r = d[(d["roi"] == roi) & (d["head"] == head)].set_index("stage").reindex(stages)
                x = np.arange(len(stages)) - 0.4 + width * (hi + 0.5)
                sc = scores[(scores["dataset"] == dataset) & (scores["roi"] == roi) & (scores["backbone"] == bb) & (scores["head"] == head)]
                label = head + (f" ({sc['normalised'].iloc[0]:.0f} % NC)" if len(sc) and pd.notna(sc["normalised"].iloc[0]) else "")
                ax.bar(x, r["weight"].to_numpy(float), width=width * 0.95, color=f"C{hi % 10}", alpha=0.85, label=label,
                       hatch="//" if bool(r["control"].fillna(False).any()) else None, edgecolor="white", linewidth=0.3)
                for si, (src, colour) in enumerate(SOURCES):
                    lo, hi_ = r[f"ci_low_{src}"].to_numpy(float), r[f"ci_high_{src}"].to_numpy(float)
                    ok = np.isfinite(lo) & np.isfinite(hi_)
                    if ok.any():
                        off = (si - 1) * width * 0.25
                        w = r["weight"].to_numpy(float)[ok]
                        ax.errorbar(x[ok] + off, w, yerr=np.abs(np.vstack([w - lo[ok], hi_[ok] - w])), fmt="none",
                                    ecolor=colour, elinewidth=0.9, capsize=1.5,
                                    label=f"CI: {src}" if (hi == 0 and roi == rois[0]) else None)
            ax.set_xticks(range(len(stages)), stages, fontsize=7, rotation=30, ha="right")
            ax.set_title(f"{dataset} · {bb} · {roi}", fontsize=9)
        axes[0].set_ylabel("stage weight (share)", fontsize=8)
        axes[-1].legend(fontsize=6, loc="upper left")
        sec.plots.append(Plot(f"{dataset}:{bb}", fig))
        sec.data[f"{dataset}:{bb}"] = d.reset_index(drop=True)
    sec.caption = (
        "Bars: the learned stage weights (each stage's share of the summed mask weight, mean over subject folds) per ROI, "
        "the main aggregation head first and the referee's controls (registry <code>meta.control</code>: uniform average, "
        "earliest stage, L2-normalised stages; hatched) beside it; legend: each head's Algonauts 2019 score in % of the noise "
        "ceiling. Error bars, offset left to right: 95 % CIs from three sources — <b>channels</b> (percentile bootstrap over "
        "each stage's channels), <b>folds</b> (delete-a-group jackknife over the subject folds' fits, t quantile), "
        "<b>seeds</b> (t-interval over training seeds; absent with one seed). From <code>selections</code> rows "
        "<code>stage_weight</code> and <code>stage_weight_ci_*</code>.")
    return sec
