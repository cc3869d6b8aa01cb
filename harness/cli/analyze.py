"""``harness analyze clusters|channels``: Yang, Gee & Shi (2024)'s analyses of a fitted head.

Both read the model a finished job saved (its ``model`` row in ``artifacts``), so they analyse
exactly the fit the leaderboard scored; rows go into the ``clusters`` / ``channel_images``
tables (migration 005), replacing earlier rows of the same job and analysis.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.context import console, open_factory
from harness.errors import HarnessError

app = typer.Typer(help="Analyses of fitted heads (Yang, Gee & Shi 2024): channel clusters and channel images.",
                          no_args_is_help=True)

Backbone = Annotated[str, typer.Option("-b", "--backbone", help="Backbone entry of the fitted job.")]
Head = Annotated[str, typer.Option("-H", "--head", help="Head entry (one whose model gives a channel readout).")]
DatasetOpt = Annotated[str, typer.Option("-d", "--dataset", help="Dataset entry of the fitted job.")]
Subject = Annotated[str | None, typer.Option("--subject", "-s", help="Subject (default: the only one fitted).")]


@dataclass
class Fitted:
    """A finished job, its saved model, and what is needed to read it."""

    job_id: str
    subject: str
    model_file: Path
    factory: Any
    head: Any
    dataset: Any
    tokens: Any

    def readout(self):
        return self.head.channel_readout(self.model_file, self.tokens)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def open_fitted(backbone: str, head: str, dataset: str, subject: str | None) -> Fitted:
    """The latest finished job of backbone × head × dataset (× subject) that saved a model."""
    from harness.analysis.readout import ReadsChannels
    from harness.store import Store

    f = open_factory()
    h = f.build(f.registry.get(head, "head"))
    if not isinstance(h, ReadsChannels):
        raise HarnessError(f"head {head!r} (plugin {h.spec.id!r}) gives no channel readout to analyse; "
                           "use a FactorTopy entry")
    store = Store(f.settings.db)
    store.migrate()  # a database written before migration 005 gains the tables
    rows = store.query(
        "SELECT j.job_id, j.subject, j.tokens_key, a.path FROM jobs j JOIN artifacts a USING (job_id) "
        "WHERE j.status = 'done' AND a.name = 'model' AND j.backbone = ? AND j.head = ? AND j.dataset = ? "
        "ORDER BY j.finished_at DESC", [backbone, head, dataset])
    if subject is not None:
        rows = rows[rows.subject == subject]
    if rows.empty:
        raise HarnessError(f"no finished {backbone} × {head} × {dataset}"
                           f"{'' if subject is None else f'/{subject}'} job with a saved model in {f.settings.db}; "
                           f"run `harness run -b {backbone} -H {head} -d {dataset}` first")
    subjects = list(dict.fromkeys(rows.subject))
    if len(subjects) > 1:
        raise HarnessError(f"{dataset} has fitted subjects {', '.join(subjects)}: choose one with --subject")
    row = rows.iloc[0]
    ds = f.dataset(dataset)
    tokens = f.tokens_for(backbone, ds.stimuli())
    if row.tokens_key and tokens.key != row.tokens_key:
        raise HarnessError(f"job {row.job_id}: fitted on token cache {row.tokens_key[:12]}, but these settings give "
                           f"{tokens.key[:12]} (other precision or grid cap?); rerun the job with these settings")
    return Fitted(job_id=row.job_id, subject=row.subject, model_file=Path(row.path), factory=f, head=h, dataset=ds,
                  tokens=tokens)


@app.command("clusters")
def clusters_cmd(
    backbone: Backbone, head: Head, dataset: DatasetOpt, subject: Subject = None,
    k: Annotated[int, typer.Option("--k", help="Clusters after Ward agglomeration.")] = 20,
    n_kmeans: Annotated[int, typer.Option(help="k-means clusters before agglomeration (capped at units − 1).")] = 1000,
    kernel: Annotated[str, typer.Option(help="cosine, rbf or linear kernel on the readout weights.")] = "cosine",
    seed: Annotated[int, typer.Option(help="k-means and Nyström seed.")] = 0,
) -> None:
    """Cluster units by their channel selectors (kernel k-means, then Ward): table `clusters`, view `cluster_summary`."""
    import numpy as np  # numpy, pandas and the analyses load with the command, not with every `harness …`
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from harness.analysis.clusters import ClusterParams, cluster_units
    from harness.board import render
    from harness.store import Store

    fit = open_fitted(backbone, head, dataset, subject)
    ro = fit.readout()
    p = ClusterParams(k=k, n_kmeans=n_kmeans, kernel=kernel, seed=seed)
    labels = cluster_units(ro.weights, p)
    n_rois = len(set(ro.rois))
    ari = float(adjusted_rand_score(ro.rois, labels)) if n_rois > 1 else None
    params = {"k": p.k, "n_kmeans": min(p.n_kmeans, len(labels) - 1), "kernel": p.kernel, "seed": p.seed,
              "ari_vs_roi": ari, "model": fit.model_file.name}
    df = pd.DataFrame({"job_id": fit.job_id, "analysis": p.name(), "unit": ro.unit_ids, "roi": ro.rois,
                       "cluster": labels.astype(np.int32), "layer_depth": ro.layer_depth(),
                       "params": json.dumps(params), "created_at": _now()})
    store = Store(fit.factory.settings.db)
    with store.writer() as con:
        con.execute("DELETE FROM clusters WHERE job_id = ? AND analysis = ?", [fit.job_id, p.name()])
        con.register("cluster_df", df)
        con.execute("INSERT INTO clusters SELECT job_id, analysis, unit, roi, cluster, layer_depth, params::JSON, "
                    "created_at FROM cluster_df")
    summary = store.query("SELECT cluster, size, main_roi, round(main_roi_share, 2) AS main_roi_share, "
                          "round(mean_layer_depth, 3) AS mean_layer_depth, roi_counts FROM cluster_summary "
                          "WHERE job_id = ? AND analysis = ? ORDER BY cluster", [fit.job_id, p.name()])
    summary["roi_counts"] = summary["roi_counts"].map(lambda m: ", ".join(f"{k}:{v}" for k, v in dict(m).items()))
    render(summary, f"clusters {p.name()} of job {fit.job_id} ({backbone} × {head} × {dataset}/{fit.subject})", console)
    if ari is not None:
        console.print(f"adjusted Rand index vs the {n_rois} ROIs: {ari:.3f}")


@app.command("channels")
def channels_cmd(
    backbone: Backbone, head: Head, dataset: DatasetOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files.")],
    roi: Annotated[str | None, typer.Option("--roi", help="ROI whose units' channels to show.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="One unit (voxel id): its greyscale channel image.")] = None,
    stimuli: Annotated[list[str] | None, typer.Option("--stimuli", help="Stimulus ids (default: the first 4 test stimuli).")] = None,
    subject: Subject = None,
) -> None:
    """RGB channel images of an ROI (top-3 PCs of its readout weights) per stimulus, plus its response map."""
    import numpy as np
    import pandas as pd

    from harness.analysis.channel_images import channel_images, write_pngs
    from harness.board import render
    from harness.contracts import VoxelTargets
    from harness.kit.images import crop_image
    from harness.store import Store

    if (roi is None) == (unit is None):
        raise HarnessError("give exactly one of --roi or --unit")
    fit = open_fitted(backbone, head, dataset, subject)
    ro = fit.readout()
    if roi is not None:
        mask, target = np.asarray(ro.rois) == roi, f"roi:{roi}"
        if not mask.any():
            raise HarnessError(f"ROI {roi!r} not among the fitted units' ROIs ({', '.join(sorted(set(ro.rois)))})")
    else:
        mask, target = np.asarray(ro.unit_ids) == unit, f"unit:{unit}"
        if not mask.any():
            raise HarnessError(f"unit {unit!r} is not one of the {len(ro.unit_ids)} fitted units")
    stim = fit.dataset.stimuli()
    targets = fit.dataset.targets(fit.subject)
    if not isinstance(targets, VoxelTargets):
        raise HarnessError(f"dataset {dataset!r} gives no voxel responses")
    ids = list(stim.ids)
    if stimuli:
        names = [s for item in stimuli for s in item.split(",") if s]
        unknown = [s for s in names if s not in ids]
        if unknown:
            raise HarnessError(f"--stimuli {unknown} not in dataset {dataset!r} (e.g. {', '.join(ids[:3])})")
        show = np.array([ids.index(s) for s in names])
    else:
        show = np.asarray(targets.test_idx)[:4]
    res = channel_images(ro, mask, show, responses=targets.responses, map_idx=np.arange(len(ids)))
    pre = fit.factory.backbone(backbone).preprocess
    safe = target.replace(":", "_").replace("/", "_")
    written = write_pngs(res, [(ids[i], stim.load(int(i))) for i in show], lambda im: crop_image(im, pre), out, safe)
    rows = []
    for sid, path in written:
        if sid == "(response map)":
            px, py = res.peak_xy
        else:
            img = res.images[[ids[i] for i in show].index(sid)]
            iy, ix = np.unravel_index(int(np.argmax(np.linalg.norm(img, axis=0))), img.shape[1:])
            px, py = (ix + 0.5) / img.shape[2], (iy + 0.5) / img.shape[1]
        rows.append({"job_id": fit.job_id, "target": target, "stimulus": sid, "path": str(path.resolve()),
                     "peak_x": float(px), "peak_y": float(py), "explained": json.dumps(res.explained.tolist()),
                     "created_at": _now()})
    df = pd.DataFrame(rows)
    with Store(fit.factory.settings.db).writer() as con:
        con.execute("DELETE FROM channel_images WHERE job_id = ? AND target = ?", [fit.job_id, target])
        con.register("img_df", df)
        con.execute("INSERT INTO channel_images SELECT job_id, target, stimulus, path, peak_x, peak_y, explained::JSON, "
                    "created_at FROM img_df")
    render(df[["stimulus", "path", "peak_x", "peak_y"]], f"channel images of {target} ({fit.job_id})", console)
    console.print("explained variance of the readout PCs: " + ", ".join(f"{v:.2f}" for v in res.explained))
