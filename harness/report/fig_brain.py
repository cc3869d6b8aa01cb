"""Figure 7: brain painting — each voxel coloured by its chosen layer and by its r, at its coordinates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.common import primary_metric
from harness.report.figure import Context, Plot, Section, new_figure, omitted

KEY, TITLE = "brain", "Brain painting: chosen layer and r per voxel on a flat map"

CHOICE_SQL = """
SELECT j.dataset, j.backbone, j.head, j.subject, j.random_init, sel.unit, sel.roi,
       arg_max(sel.layer_index / greatest(sel.n_layers - 1, 1), sel.weight) AS depth,
       arg_max(sel.layer, sel.weight) AS layer
FROM selections sel JOIN jobs j USING (job_id)
WHERE j.status = 'done' AND sel.selector = 'layer'
GROUP BY ALL
"""

R_SQL = """
SELECT j.dataset, j.backbone, j.head, j.subject, u.unit, u.value AS r
FROM unit_scores u JOIN jobs j USING (job_id)
WHERE j.status = 'done' AND u.metric IN (SELECT name FROM entries WHERE plugin = 'pearson')
"""

RANK_SQL = "SELECT dataset, backbone, head, metric, raw FROM leaderboard WHERE NOT random_init AND roi IN ('all', 'mean')"

#: maps per dataset (best pretrained backbone × head pairs first): a page, not a data dump
MAX_ROWS = 4


def build(ctx: Context) -> Section:
    choice = ctx.reader.query(CHOICE_SQL)
    if choice.empty:
        return omitted(KEY, TITLE, "no per-voxel layer selections in the database")
    if ctx.outside is None:
        return omitted(KEY, TITLE, "voxel coordinates are not in the database and the report was built without dataset access")
    r = ctx.reader.query(R_SQL)
    ranks = ctx.reader.query(RANK_SQL)
    sec = Section(key=KEY, title=TITLE)
    skipped = []
    for dataset, d in choice[~choice["random_init"].astype(bool)].groupby("dataset", sort=True):
        subject = sorted(d["subject"].unique())[0]
        vox = ctx.outside.voxels(str(dataset), str(subject))
        if vox is None:
            skipped.append(str(dataset))
            continue
        vox = vox.assign(unit=vox["voxel_id"].astype(str))
        rk = ranks[ranks["dataset"] == dataset]
        metric = primary_metric(rk["metric"])
        order = rk[rk["metric"] == metric].groupby(["backbone", "head"])["raw"].mean().sort_values(ascending=False)
        pairs = [p for p in order.index if p in set(zip(d["backbone"], d["head"], strict=True))][:MAX_ROWS]
        if not pairs:
            pairs = sorted(set(zip(d["backbone"], d["head"], strict=True)))[:MAX_ROWS]
        # one full-width map per row: sheets are often much wider than tall (the synthetic brain is 4 ROIs side by side)
        xr = float(np.ptp(vox["x"])) or 1.0
        yr = float(np.ptp(vox["y"])) or 1.0
        map_h = float(np.clip(7.0 * yr / xr + 0.9, 1.8, 5.0))
        fig = new_figure(8.4, map_h * 2 * len(pairs) + 0.3)
        axes = fig.subplots(2 * len(pairs), 1, squeeze=False).reshape(len(pairs), 2)
        rows = []
        for (a_layer, a_r), (bb, head) in zip(axes, pairs, strict=True):
            c = d[(d["backbone"] == bb) & (d["head"] == head) & (d["subject"] == subject)]
            rr = r[(r["dataset"] == dataset) & (r["backbone"] == bb) & (r["head"] == head) & (r["subject"] == subject)]
            m = vox.merge(c[["unit", "depth", "layer"]], on="unit", how="inner").merge(rr[["unit", "r"]], on="unit", how="left")
            s1 = a_layer.scatter(m["x"], m["y"], c=m["depth"], cmap="viridis", vmin=0, vmax=1, s=14, marker="s")
            s2 = a_r.scatter(m["x"], m["y"], c=m["r"], cmap="magma", vmin=0, vmax=max(float(np.nanmax(m["r"])) if m["r"].notna().any() else 1.0, 1e-6),
                             s=14, marker="s")
            for ax, title in ((a_layer, "chosen layer depth"), (a_r, "r (test stimuli)")):
                for roi, g in m.groupby("roi"):
                    ax.text(g["x"].mean(), g["y"].max(), str(roi), ha="center", va="bottom", fontsize=7)
                ax.set_aspect("equal")
                ax.set_title(f"{dataset} · {subject} · {bb} · {head}: {title}", fontsize=7)
                ax.tick_params(labelsize=6)
                ax.set_xlabel("x (mm)", fontsize=7)
            fig.colorbar(s1, ax=a_layer, shrink=0.8, label="depth (0 = first layer)")
            fig.colorbar(s2, ax=a_r, shrink=0.8, label="r")
            rows.append(m.assign(backbone=bb, head=head, subject=subject))
        sec.plots.append(Plot(str(dataset), fig))
        sec.data[str(dataset)] = pd.concat(rows, ignore_index=True)
        sec.outside.append(f"{dataset}: voxel coordinates from its dataset plugin's voxel table (subject {subject})")
    if not sec.plots:
        return omitted(KEY, TITLE, "no dataset in the database has voxel coordinates available here"
                       + (f" ({', '.join(skipped)} gave none)" if skipped else ""))
    sec.caption = (
        f"Per voxel dataset with coordinates, first subject, the best {MAX_ROWS} pretrained backbone × head pairs (by the "
        "dataset's primary metric over all voxels): each voxel at its (x, y) position — a flat projection that drops z — "
        "coloured left by the depth of the layer with its largest weight (0 = first tapped layer, 1 = deepest; "
        "<code>selections</code> rows <code>layer</code>) and right by its test-set Pearson r (<code>unit_scores</code>). "
        "Coordinates are not stored in the database; they come from the dataset plugin's voxel table. "
        "fsaverage surfaces (nilearn) are left out: no dataset on fsaverage is available offline to test them against.")
    return sec
