"""Figure 7: brain painting — each voxel coloured by its chosen layer and by its r, at its coordinates, and on the
fsaverage surface (nilearn) when the dataset's units are fsaverage vertices (NSD in fsaverage space, Algonauts 2023).

The surface view uses the fsaverage5 mesh nilearn ships inside its wheel (``nilearn/datasets/data/fsaverage5``),
so a report never downloads anything; fsaverage (163842 vertices per hemisphere) is not shipped. Data on
fsaverage map onto it exactly by index: FreeSurfer's icosahedral meshes append each subdivision's new vertices
after the old ones, so fsaverage5's 10242 vertices are fsaverage's first 10242 (A. M. Winkler, "Downsampling
(decimating) a brain surface", brainder.org 2016; nilearn issue #3415 checks it for fsaverage5/6/7). Units on
higher-index vertices are left off the surface view (a 1-in-16 decimation of fsaverage) and counted in the caption.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.report.common import primary_metric
from harness.report.figure import Context, Plot, Section, new_figure, omitted
from harness.report.outside import SURFACE_COLUMNS

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

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

#: the mesh nilearn ships in its package (works offline); its vertices are fsaverage's first N_FSAVERAGE5
SURFACE_MESH = "fsaverage5"
N_FSAVERAGE5 = 10242
#: voxel-table hemisphere names → nilearn's
HEMIS = {"lh": "left", "rh": "right"}
#: visual cortex: the lateral occipital, medial (calcarine: V1) and ventral (VTC) faces of each hemisphere
SURFACE_VIEWS = ("lateral", "medial", "ventral")


def build(ctx: Context) -> Section:
    choice = ctx.reader.query(CHOICE_SQL)
    if choice.empty:
        return omitted(KEY, TITLE, "no per-voxel layer selections in the database")
    if ctx.outside is None:
        return omitted(KEY, TITLE, "voxel coordinates are not in the database and the report was built without dataset access")
    r = ctx.reader.query(R_SQL)
    ranks = ctx.reader.query(RANK_SQL)
    sec = Section(key=KEY, title=TITLE)
    skipped: list[str] = []
    view_notes: list[str] = []
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
        merged = [(bb, head, merge_values(vox, d, r, str(dataset), bb, head, subject)) for bb, head in pairs]
        if {"x", "y"} <= set(vox.columns):
            fig = flat_map(str(dataset), subject, vox, merged)
            sec.plots.append(Plot(str(dataset), fig))
            sec.data[str(dataset)] = pd.concat([m.assign(backbone=bb, head=head, subject=subject) for bb, head, m in merged],
                                               ignore_index=True)
            sec.outside.append(f"{dataset}: voxel coordinates from its dataset plugin's voxel table (subject {subject})")
        else:
            view_notes.append(f"{dataset}: no flat map, its voxel table has no x, y coordinates")
        if not set(vox.columns) >= SURFACE_COLUMNS:
            view_notes.append(f"{dataset}: no surface view, its units are not fsaverage vertices (the voxel table has "
                                 "no hemi/fsaverage_index columns)")
            continue
        bb, head, m = merged[0]
        drawn = surface_plot(str(dataset), subject, bb, head, m)
        if isinstance(drawn, str):
            view_notes.append(f"{dataset}: no surface view, {drawn}")
            continue
        plot, values, n_off = drawn
        sec.plots.append(plot)
        sec.data[f"surface:{dataset}"] = values.assign(backbone=bb, head=head, subject=subject)
        view_notes.append(f"{dataset}: surface view of {bb} · {head}, {len(values)} of {len(m)} units on {SURFACE_MESH} "
                             f"vertices" + (f" ({n_off} on fsaverage vertices beyond the first {N_FSAVERAGE5} left off)" if n_off else ""))
        sec.outside.append(f"{dataset}: fsaverage vertex indices and hemispheres from its dataset plugin's voxel table; "
                           f"the {SURFACE_MESH} mesh shipped with nilearn")
    if not sec.plots:
        return omitted(KEY, TITLE, "no dataset in the database has voxel coordinates or fsaverage vertices available here"
                       + (f" ({', '.join(skipped)} gave none)" if skipped else "") + "".join(f"; {n}" for n in view_notes))
    sec.caption = (
        f"Per voxel dataset with coordinates, first subject, the best {MAX_ROWS} pretrained backbone × head pairs (by the "
        "dataset's primary metric over all voxels): each voxel at its (x, y) position — a flat projection that drops z — "
        "coloured (top) by the depth of the layer with its largest weight (0 = first tapped layer, 1 = deepest; "
        "<code>selections</code> rows <code>layer</code>) and (bottom) by its test-set Pearson r (<code>unit_scores</code>). "
        "Coordinates are not stored in the database; they come from the dataset plugin's voxel table. "
        f"Where the units are fsaverage vertices, the best pair is also drawn on nilearn's inflated {SURFACE_MESH} mesh "
        f"({', '.join(SURFACE_VIEWS)} views per hemisphere, sulcal depth underneath; a face takes the mean of its "
        f"vertices that carry a unit): fsaverage vertex i &lt; {N_FSAVERAGE5} is {SURFACE_MESH} vertex i (icosahedral "
        "nesting). " + "; ".join(view_notes) + ".")
    return sec


def merge_values(vox: pd.DataFrame, d: pd.DataFrame, r: pd.DataFrame, dataset: str, bb: str, head: str,
                 subject: str) -> pd.DataFrame:
    """The voxel table joined with one backbone × head's chosen layer (depth) and r per unit."""
    c = d[(d["backbone"] == bb) & (d["head"] == head) & (d["subject"] == subject)]
    rr = r[(r["dataset"] == dataset) & (r["backbone"] == bb) & (r["head"] == head) & (r["subject"] == subject)]
    return vox.merge(c[["unit", "depth", "layer"]], on="unit", how="inner").merge(rr[["unit", "r"]], on="unit", how="left")


def r_limit(values: pd.Series) -> float:
    """Upper end of the r colour scale: the largest r drawn (1 when none)."""
    return max(float(np.nanmax(values)) if values.notna().any() else 1.0, 1e-6)


def flat_map(dataset: str, subject: str, vox: pd.DataFrame, merged: list[tuple[str, str, pd.DataFrame]]) -> MplFigure:
    """One full-width map per row: sheets are often much wider than tall (the synthetic brain is 4 ROIs side by side)."""
    xr = float(np.ptp(vox["x"])) or 1.0
    yr = float(np.ptp(vox["y"])) or 1.0
    map_h = float(np.clip(7.0 * yr / xr + 0.9, 1.8, 5.0))
    fig = new_figure(8.4, map_h * 2 * len(merged) + 0.3)
    axes = fig.subplots(2 * len(merged), 1, squeeze=False).reshape(len(merged), 2)
    for (a_layer, a_r), (bb, head, m) in zip(axes, merged, strict=True):
        s1 = a_layer.scatter(m["x"], m["y"], c=m["depth"], cmap="viridis", vmin=0, vmax=1, s=14, marker="s")
        s2 = a_r.scatter(m["x"], m["y"], c=m["r"], cmap="magma", vmin=0, vmax=r_limit(m["r"]), s=14, marker="s")
        for ax, title in ((a_layer, "chosen layer depth"), (a_r, "r (test stimuli)")):
            for roi, g in m.groupby("roi"):
                ax.text(g["x"].mean(), g["y"].max(), str(roi), ha="center", va="bottom", fontsize=7)
            ax.set_aspect("equal")
            ax.set_title(f"{dataset} · {subject} · {bb} · {head}: {title}", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("x (mm)", fontsize=7)
        fig.colorbar(s1, ax=a_layer, shrink=0.8, label="depth (0 = first layer)")
        fig.colorbar(s2, ax=a_r, shrink=0.8, label="r")
    return fig


def surface_arrays(m: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Per hemisphere present, one value per fsaverage5 vertex: the unit's ``column`` at its vertex, NaN where no unit
    sits (units on fsaverage vertices ≥ N_FSAVERAGE5 have no fsaverage5 vertex and are dropped)."""
    out = {}
    on = m[m["fsaverage_index"].astype(np.int64) < N_FSAVERAGE5]
    for hemi in (h for h in HEMIS if h in set(m["hemi"])):
        g = on[on["hemi"] == hemi]
        a = np.full(N_FSAVERAGE5, np.nan)
        a[g["fsaverage_index"].to_numpy(np.int64)] = g[column].to_numpy(np.float64)
        out[hemi] = a
    return out


def _face_mean(values: np.ndarray) -> float:
    """A face's colour value: the mean of its vertices that carry a unit (NaN = background when none does)."""
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def surface_plot(dataset: str, subject: str, bb: str, head: str, m: pd.DataFrame) -> tuple[Plot, pd.DataFrame, int] | str:
    """Chosen-layer depth and r on the inflated fsaverage5 surface; the per-vertex values drawn (as a table: hemi,
    vertex, depth, r) and how many units fell off the mesh. A string says why nothing could be drawn."""
    try:
        from nilearn.datasets import load_fsaverage, load_fsaverage_data
        from nilearn.plotting import plot_surf_stat_map
    except ImportError:
        return "nilearn is not installed (pip install 'harness[report]')"
    m = m[m["fsaverage_index"].notna()]
    bad = sorted(set(m["hemi"].astype(str)) - set(HEMIS))
    if bad:
        return f"hemisphere(s) {bad} in the voxel table's hemi column (expected lh/rh)"
    arrays = {col: surface_arrays(m, col) for col in ("depth", "r")}
    n_off = int((m["fsaverage_index"].astype(np.int64) >= N_FSAVERAGE5).sum())
    if n_off == len(m):
        return f"none of its {len(m)} units is on one of fsaverage's first {N_FSAVERAGE5} vertices ({SURFACE_MESH})"
    mesh = load_fsaverage(SURFACE_MESH)["inflated"]
    sulc = load_fsaverage_data(mesh=SURFACE_MESH, mesh_type="inflated", data_type="sulcal")
    hemis = list(arrays["depth"])
    fig = new_figure(2.6 * len(SURFACE_VIEWS) * len(hemis) + 0.8, 2 * 2.3 + 0.4)
    scales = {"depth": ("viridis", 1.0, "chosen layer depth"), "r": ("magma", r_limit(m["r"]), "r (test stimuli)")}
    for row, (col, (cmap, vmax, title)) in enumerate(scales.items()):
        for h_i, hemi in enumerate(hemis):
            for v_i, view in enumerate(SURFACE_VIEWS):
                k = h_i * len(SURFACE_VIEWS) + v_i
                ax = fig.add_subplot(2, len(hemis) * len(SURFACE_VIEWS), row * len(hemis) * len(SURFACE_VIEWS) + k + 1,
                                     projection="3d")
                last = k == len(hemis) * len(SURFACE_VIEWS) - 1
                plot_surf_stat_map(mesh, arrays[col][hemi], hemi=HEMIS[hemi], view=view, bg_map=sulc, axes=ax, figure=fig,
                                   cmap=cmap, vmin=0.0, vmax=vmax, symmetric_cbar=False, colorbar=last,
                                   avg_method=_face_mean)
                ax.set_title(f"{hemi} {view}" + (f" · {title}" if k == 0 else ""), fontsize=7)
    fig.suptitle(f"{dataset} · {subject} · {bb} · {head} on {SURFACE_MESH} (inflated)", fontsize=8)
    values = pd.concat([pd.DataFrame({"hemi": hemi, "vertex": np.flatnonzero(np.isfinite(arrays["depth"][hemi])),
                                      "depth": arrays["depth"][hemi][np.isfinite(arrays["depth"][hemi])],
                                      "r": arrays["r"][hemi][np.isfinite(arrays["depth"][hemi])]})
                        for hemi in hemis], ignore_index=True)
    return Plot(f"{dataset} surface", fig), values, n_off
