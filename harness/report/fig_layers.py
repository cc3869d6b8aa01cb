"""Figure 3: which layers each ROI reads (ROI × layer heat maps), and FactorTopy's space and scale selectors."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from harness.report.common import roi_levels, roi_order
from harness.report.figure import CI_LEVEL, Context, Plot, Section, new_figure, omitted, span

KEY, TITLE = "layers", "Layer choice per ROI, and where and at what scale FactorTopy reads"

LAYER_SQL = """
SELECT dataset, backbone, head, roi, layer, layer_index, depth, mean_weight
FROM layer_choice
"""

#: space samples paired per unit: a head writes space_x and space_y rows in the same order, so the k-th
#: x of a unit goes with its k-th y (rowid keeps the insertion order of one job's rows)
SPACE_SQL = """
WITH s AS (
    SELECT j.dataset, j.backbone, j.head, j.random_init, sel.job_id, sel.unit, sel.roi, sel.selector, sel.value, sel.weight,
           row_number() OVER (PARTITION BY sel.job_id, sel.unit, sel.selector ORDER BY sel.rowid) AS k
    FROM selections sel JOIN jobs j USING (job_id)
    WHERE j.status = 'done' AND sel.selector IN ('space_x', 'space_y')
)
SELECT x.dataset, x.backbone, x.head, x.random_init, x.roi, x.job_id, x.unit, x.k, x.value AS x, y.value AS y, x.weight
FROM s x JOIN s y ON x.job_id = y.job_id AND x.unit = y.unit AND x.k = y.k
WHERE x.selector = 'space_x' AND y.selector = 'space_y'
"""

SCALE_SQL = """
SELECT j.dataset, j.backbone, j.head, j.random_init, sel.roi, sel.unit, sel.value AS scale
FROM selections sel JOIN jobs j USING (job_id)
WHERE j.status = 'done' AND sel.selector = 'scale'
"""

N_BOOT, SPACE_BINS = 1000, 12


def build(ctx: Context) -> Section:
    lc = ctx.reader.query(LAYER_SQL)
    space = ctx.reader.query(SPACE_SQL)
    scale = ctx.reader.query(SCALE_SQL)
    if lc.empty and space.empty:
        return omitted(KEY, TITLE, "no layer selections in the database")
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    for dataset, d in lc.groupby("dataset", sort=True):
        panels = sorted(d.groupby(["backbone", "head"]).groups)
        ncols = min(4, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = new_figure(3.3 * ncols + 0.8, 1.9 * nrows + 0.5)
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        data, image = [], None
        for ax, (bb, head) in zip(axes, panels, strict=False):
            p = d[(d["backbone"] == bb) & (d["head"] == head)]
            rois = roi_order(str(dataset), list(p["roi"]), levels)
            # columns: all the backbone's tapped layers, also those no unit weighted (an RSA head weights one per ROI);
            # the view's depth = layer_index / (n_layers - 1) gives n_layers
            n_layers = _n_layers(p)
            grid = p.pivot_table(index="roi", columns="layer_index", values="mean_weight", aggfunc="sum").reindex(
                index=rois, columns=range(n_layers))
            # a (ROI, layer) without a row is a layer none of the ROI's units weighted: 0, not missing
            image = ax.imshow(grid.fillna(0.0).to_numpy(float), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_yticks(range(len(rois)), rois, fontsize=7)
            ax.set_xticks(range(n_layers), [str(i) for i in range(n_layers)], fontsize=6)
            ax.set_xlabel("layer index (shallow → deep)", fontsize=7)
            ax.set_title(f"{bb} · {head}", fontsize=8)
            names = p.drop_duplicates("layer_index").set_index("layer_index")["layer"]
            long = grid.stack(future_stack=True).rename("mean_weight").reset_index()
            data.append(long.assign(layer=long["layer_index"].map(names), backbone=bb, head=head))
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if image is not None:
            fig.colorbar(image, ax=list(axes[: len(panels)]), shrink=0.8, label="mean layer weight")
        sec.plots.append(Plot(f"{dataset}", fig))
        sec.data[str(dataset)] = pd.concat(data, ignore_index=True)
    space_note = _space(ctx, sec, space, scale, levels)
    sec.caption = (
        "Heat maps: per backbone × head, the mean layer weight of each ROI's units (rows, shallow → deep ROIs) over "
        "the backbone's tapped layers (columns, shallow → deep), from the <code>layer_choice</code> view; a row sums to 1. "
        "Best-layer heads (ridge) put each unit's whole weight on one layer, RSA heads on the layer chosen for each "
        "held-out subject, soft selectors (FactorTopy, GNet) spread it. " + space_note)
    return sec


def _n_layers(rows: pd.DataFrame) -> int:
    k = (rows["layer_index"] / rows["depth"]).where(rows["depth"] > 0)
    return int(np.rint(k.max())) + 1 if k.notna().any() else int(rows["layer_index"].max()) + 1


def _boot_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    if values.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (N_BOOT, values.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _space(ctx: Context, sec: Section, space: pd.DataFrame, scale: pd.DataFrame, levels: dict) -> str:
    """Per head with a space selector: a heat map of the units' read-out locations per ROI over an example
    stimulus, and the global-token (scale) share per ROI."""
    if space.empty:
        return "No head with a space selector (FactorTopy) ran, so its space and scale maps are left out."
    notes = []
    for (dataset, bb, head), s in space.groupby(["dataset", "backbone", "head"], sort=True):
        rois = roi_order(str(dataset), list(s["roi"]), levels)
        sc = scale[(scale["dataset"] == dataset) & (scale["backbone"] == bb) & (scale["head"] == head)]
        img = ctx.outside.stimulus(str(dataset)) if ctx.outside is not None else None
        fig = new_figure(2.2 * len(rois) + 2.8, 2.6)
        axes = fig.subplots(1, len(rois) + 1, squeeze=False)[0]
        hist_rows = []
        for ax, roi in zip(axes, rois, strict=False):
            r = s[s["roi"] == roi]
            h, _, _ = np.histogram2d(r["y"], r["x"], bins=SPACE_BINS, range=[[0, 1], [0, 1]], weights=r["weight"])
            h = h / max(h.sum(), 1e-12)
            if img is not None:
                ax.imshow(np.asarray(img), extent=(0, 1, 1, 0))
            # empty cells transparent, so the stimulus shows where no unit reads
            ax.imshow(np.ma.masked_equal(h, 0.0), extent=(0, 1, 1, 0), cmap="magma", vmin=0, alpha=0.75 if img is not None else 1.0,
                      interpolation="nearest")
            ax.set_title(f"{roi} (n = {r['unit'].nunique()})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            hist_rows.append(pd.DataFrame({"roi": roi, "density": h.ravel(), "cell": np.arange(h.size)}))
        means, los, his = [], [], []
        for roi in rois:
            v = sc.loc[sc["roi"] == roi, "scale"].to_numpy(float)
            lo, hi = _boot_ci(v)
            means.append(float(v.mean()) if v.size else float("nan"))
            los.append(lo)
            his.append(hi)
        ax = axes[-1]
        m = np.array(means)
        err = np.abs(np.vstack([m - np.array(los), np.array(his) - m]))
        ax.bar(range(len(rois)), m, yerr=np.where(np.isfinite(err), err, 0), capsize=2, color="C2")
        ax.set_xticks(range(len(rois)), rois, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title("scale: global-token share", fontsize=8)
        fig.suptitle(f"{dataset} · {bb} · {head}: read-out locations", fontsize=9)
        key = f"space:{dataset}:{bb}:{head}"
        sec.plots.append(Plot(key, fig))
        sec.data[key] = pd.concat(hist_rows, ignore_index=True)
        sec.data[f"scale:{dataset}:{bb}:{head}"] = pd.DataFrame({"roi": rois, "mean": means, "ci_low": los, "ci_high": his})
        if img is None:
            notes.append(f"{escape(str(dataset))}: no stimulus available here, heat maps drawn without the background image")
    if ctx.outside is not None:
        sec.outside.append("example stimulus: the dataset's first stimulus, read through its dataset plugin")
    return ("Read-out location panels (heads with a space selector): the share of each ROI's units' read-out points "
            f"in a {SPACE_BINS}×{SPACE_BINS} grid over the backbone's input crop (0–1 fractions; "
            "<code>space_x</code>/<code>space_y</code> selections), drawn over the dataset's first stimulus "
            "(uncropped, so the crop's margin is not shown); "
            f"n = {span(space.groupby(['job_id', 'roi'])['unit'].nunique())} units per ROI and subject. Last panel: mean global-token "
            f"share (<code>scale</code>) per ROI, {CI_LEVEL} percentile bootstrap over units ({N_BOOT} resamples)."
            + (" " + "; ".join(notes) + "." if notes else ""))
