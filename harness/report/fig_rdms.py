"""Figure 6: the best layer-wise RSA model's RDM beside the subjects' mean RDM, per ROI."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from harness.report.common import roi_levels, roi_order
from harness.report.figure import Context, Plot, Section, new_figure, omitted

KEY, TITLE = "rdms", "RDMs: best model vs the subjects' mean, per ROI"

#: the best-scoring job per dataset × ROI (Algonauts 2019 score) among jobs whose predicted RDMs are stored
#: (``jobs.model_rdms``: a content digest under $HARNESS_HOME/model_rdms, written by the runner)
SQL = """
WITH best AS (
    SELECT l.dataset, l.roi, l.backbone, l.head, l.metric, l.raw, l.normalised,
           row_number() OVER (PARTITION BY l.dataset, l.roi ORDER BY l.raw DESC) AS k
    FROM leaderboard l
    JOIN entries m ON m.name = l.metric AND m.plugin = 'rsa_r2'
    WHERE l.roi NOT IN ('mean', 'all')
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.dataset = l.dataset AND j.backbone = l.backbone AND j.head = l.head
                  AND j.status = 'done' AND j.model_rdms IS NOT NULL)
)
SELECT b.dataset, b.roi, b.backbone, b.head, b.metric, b.raw, b.normalised, j.job_id, j.model_rdms
FROM best b
JOIN jobs j ON j.dataset = b.dataset AND j.backbone = b.backbone AND j.head = b.head AND j.status = 'done'
WHERE b.k = 1 AND j.model_rdms IS NOT NULL
"""


def _rank(rdm: np.ndarray) -> np.ndarray:
    """Percentile ranks of the off-diagonal dissimilarities (Kriegeskorte 2008's display), diagonal 0."""
    iu = np.triu_indices(len(rdm), 1)
    out = np.zeros_like(rdm, dtype=float)
    out[iu] = rankdata(rdm[iu]) / len(iu[0]) * 100
    return out + out.T


def build(ctx: Context) -> Section:
    best = ctx.reader.query(SQL)
    if best.empty:
        return omitted(KEY, TITLE, "no RDM-dataset job with stored model RDMs in the database")
    if ctx.outside is None:
        return omitted(KEY, TITLE, "subjects' RDMs and the stored model RDMs are files outside the database, and the report "
                       "was built with --db-only")
    levels = roi_levels(ctx.reader)
    sec = Section(key=KEY, title=TITLE)
    notes = []
    for dataset, d in best.groupby("dataset", sort=True):
        targets = ctx.outside.subject_rdms(str(dataset))
        if targets is None:
            notes.append(f"{escape(str(dataset))}: its data is not available here")
            continue
        cats = ctx.outside.categories(str(dataset))
        rois = [r for r in roi_order(str(dataset), list(d["roi"]), levels) if r in targets.rdms]
        fig = new_figure(6.4, 3.0 * len(rois) + 0.3)
        axes = fig.subplots(len(rois), 2, squeeze=False)
        rows = []
        for (a_model, a_subj), roi in zip(axes, rois, strict=True):
            b = d[d["roi"] == roi].iloc[0]
            n_stim = int(targets.rdms[roi].shape[-1])
            idx = targets.stimuli_of(roi, n_stim if cats is None else len(cats))
            model = ctx.outside.stored_model_rdm(str(b["model_rdms"]), roi)
            subj = np.nanmean(targets.rdms[roi], axis=0)
            order = np.arange(len(subj))
            roi_cats = [cats[i] for i in idx] if cats is not None and len(cats) >= len(idx) else None
            if roi_cats is not None:
                order = np.array(sorted(range(len(subj)), key=lambda i: (roi_cats[i], i)))
            for ax, rdm, title in ((a_model, model, f"{b['backbone']} · {b['head']}"),
                                   (a_subj, subj, f"subjects' mean ({targets.rdms[roi].shape[0]} subjects)")):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{roi}: {title}", fontsize=7)
                if rdm is None:
                    ax.text(0.5, 0.5, "stored model RDMs missing\n(another HARNESS_HOME?)", ha="center", va="center", fontsize=7)
                    continue
                ax.imshow(_rank(rdm)[np.ix_(order, order)], cmap="RdBu_r", vmin=0, vmax=100, interpolation="nearest")
                if roi_cats is not None:
                    sorted_cats = [roi_cats[i] for i in order]
                    edges = [i for i in range(1, len(order)) if sorted_cats[i] != sorted_cats[i - 1]]
                    for e in edges:
                        ax.axhline(e - 0.5, color="black", linewidth=0.3)
                        ax.axvline(e - 0.5, color="black", linewidth=0.3)
            iu = np.triu_indices(len(subj), 1)
            ok = np.isfinite(model[iu]) if model is not None else None
            rho = float(spearmanr(model[iu][ok], subj[iu][ok])[0]) if model is not None else float("nan")
            rows.append({"roi": roi, "backbone": b["backbone"], "head": b["head"], "model_rdms": b["model_rdms"],
                         "raw": b["raw"], "normalised": b["normalised"], "spearman_mean_rdm": rho,
                         "n_stimuli": len(subj), "sorted_by_category": roi_cats is not None})
        sec.plots.append(Plot(str(dataset), fig))
        sec.data[str(dataset)] = pd.DataFrame(rows)
        sec.outside.append(f"{dataset}: subjects' RDMs from its dataset plugin; model RDMs from the files the jobs stored")
    if not sec.plots:
        return omitted(KEY, TITLE, "; ".join(notes))
    sec.caption = (
        "Per RDM dataset and ROI: left, the best-scoring model's RDM (highest Algonauts 2019 score in the "
        "<code>leaderboard</code> view among jobs with stored predictions), the mean over held-out subjects of the "
        "model RDMs the job predicted (read from the file <code>jobs.model_rdms</code> names under "
        "<code>$HARNESS_HOME/model_rdms</code>); right, the subjects' mean RDM (dataset plugin). Both shown as percentile "
        "ranks of the dissimilarities (blue similar, red dissimilar); images sorted by category with lines at category "
        "borders where the dataset has categories (Kriegeskorte 92). No CI is drawn (the score's CI is in figure 1)."
        + (" " + "; ".join(notes) + "." if notes else ""))
    return sec
