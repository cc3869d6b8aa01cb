"""Figure 6: the best layer-wise RSA model's RDM beside the subjects' mean RDM, per ROI."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from harness.report.common import roi_levels, roi_order
from harness.report.figure import Context, Plot, Section, new_figure, omitted

KEY, TITLE = "rdms", "RDMs: best model vs the subjects' mean, per ROI"

#: the best row per dataset × ROI among layer-wise RSA heads (whose model RDM is one layer's RDM, so it can be
#: rebuilt from the job's cached tokens), with the layer each held-out subject's model used
SQL = """
WITH best AS (
    SELECT l.dataset, l.roi, l.backbone, l.head, l.metric, l.raw, l.normalised,
           row_number() OVER (PARTITION BY l.dataset, l.roi ORDER BY l.raw DESC) AS k
    FROM leaderboard l
    JOIN entries h ON h.name = l.head AND h.kind = 'head' AND h.plugin = 'rsa'
    JOIN entries m ON m.name = l.metric AND m.plugin = 'rsa_r2'
    WHERE l.roi NOT IN ('mean', 'all')
)
SELECT b.dataset, b.roi, b.backbone, b.head, b.metric, b.raw, b.normalised, j.job_id, j.tokens_key,
       j.config::VARCHAR AS config, mode(sel.layer) AS layer, count(*) AS n_subjects
FROM best b
JOIN jobs j ON j.dataset = b.dataset AND j.backbone = b.backbone AND j.head = b.head AND j.status = 'done'
JOIN selections sel ON sel.job_id = j.job_id AND sel.roi = b.roi AND sel.selector = 'layer_loso'
WHERE b.k = 1
GROUP BY ALL
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
        return omitted(KEY, TITLE, "no layer-wise RSA jobs on an RDM dataset in the database")
    if ctx.outside is None:
        return omitted(KEY, TITLE, "the database stores no RDMs (issue 10 adds stored predicted RDMs); the report was "
                       "built without dataset access, so subjects' and model RDMs cannot be shown")
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
            model = ctx.outside.model_rdm(str(b["tokens_key"]), str(b["config"]), str(b["layer"]), idx)
            subj = np.nanmean(targets.rdms[roi], axis=0)
            order = np.arange(len(subj))
            roi_cats = [cats[i] for i in idx] if cats is not None and len(cats) >= len(idx) else None
            if roi_cats is not None:
                order = np.array(sorted(range(len(subj)), key=lambda i: (roi_cats[i], i)))
            for ax, rdm, title in ((a_model, model, f"{b['backbone']} · {b['head']} · layer {b['layer']}"),
                                   (a_subj, subj, f"subjects' mean ({targets.rdms[roi].shape[0]} subjects)")):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{roi}: {title}", fontsize=7)
                if rdm is None:
                    ax.text(0.5, 0.5, "token cache entry gone:\nrerun the job to rebuild", ha="center", va="center", fontsize=7)
                    continue
                ax.imshow(_rank(rdm)[np.ix_(order, order)], cmap="RdBu_r", vmin=0, vmax=100, interpolation="nearest")
                if roi_cats is not None:
                    sorted_cats = [roi_cats[i] for i in order]
                    edges = [i for i in range(1, len(order)) if sorted_cats[i] != sorted_cats[i - 1]]
                    for e in edges:
                        ax.axhline(e - 0.5, color="black", linewidth=0.3)
                        ax.axvline(e - 0.5, color="black", linewidth=0.3)
            iu = np.triu_indices(len(subj), 1)
            rho = float(spearmanr(model[iu], subj[iu])[0]) if model is not None else float("nan")
            rows.append({"roi": roi, "backbone": b["backbone"], "head": b["head"], "layer": b["layer"],
                         "raw": b["raw"], "normalised": b["normalised"], "spearman_mean_rdm": rho,
                         "n_stimuli": len(subj), "sorted_by_category": roi_cats is not None})
        sec.plots.append(Plot(str(dataset), fig))
        sec.data[str(dataset)] = pd.DataFrame(rows)
        sec.outside.append(f"{dataset}: subjects' RDMs from its dataset plugin; model RDMs rebuilt from the jobs' token cache entries")
    if not sec.plots:
        return omitted(KEY, TITLE, "; ".join(notes))
    sec.caption = (
        "Per RDM dataset and ROI: left, the RDM of the best-scoring layer-wise RSA model (highest Algonauts 2019 score "
        "in the <code>leaderboard</code> view among <code>rsa</code>-plugin heads; the layer most held-out subjects used, "
        "from <code>layer_loso</code> selections), 1 − Pearson r between stimuli's features as the head computed them; "
        "right, the subjects' mean RDM. Both shown as percentile ranks of the dissimilarities (blue similar, red "
        "dissimilar); images sorted by category with lines at category borders where the dataset has categories "
        "(Kriegeskorte 92). The database holds no RDMs (issue 10 adds stored predicted RDMs), so the subjects' RDMs are "
        "read through the dataset plugin and the model RDM is rebuilt from the job's cached tokens (<code>jobs.tokens_key</code>) "
        "with the job's recorded head arguments; no CI is drawn (the score's CI is in figure 1)."
        + (" " + "; ".join(notes) + "." if notes else ""))
    return sec
