"""Algonauts 2019 on unseen images and subjects: does learned stage aggregation beat layer-wise RSA and the uniform
average when trained on one image set and scored on another (default 118 → 92)?

Everything goes through the harness itself (`Runner`, the registry's heads, the dataset's held-out protocol
``predict``), so the numbers are the leaderboard's: a joined dataset ``{sets: [118, 92], predict: {"92": ["118"]}}``
trains every head on the 118 set's images and subjects and predicts the 92 set's; layer-wise RSA picks its layer
on the 118 set only. Scores are on the devkit's scale (% of the upper noise ceiling) with subject-bootstrap CIs;
Δ rows are paired over the test set's subjects (the same subjects score every head): mean of the per-subject
differences in r² with a 95 % percentile bootstrap CI over subjects (10 000 draws). A variant "beats" a baseline
when the CI of Δ excludes zero on the positive side.

Variants are registry entries plus the extra configurations below (``VARIANTS``); ``--heads`` picks any subset.

Usage::

    HARNESS_DATA_ROOT=/work/shared/data HF_HUB_OFFLINE=1 nice python benchmarks/aggregation_cross_set.py \
        [--backbones efficientnet_lite0] [--heads rsa aggregation_uniform aggregation ...] [--train 118 --test 92]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
#: configurations tried beyond the registry's (stage_aggregation args)
VARIANTS: dict[str, dict[str, Any]] = {
    "agg_stage_channel": {"masks": ["stage", "channel"]},
    "agg_stage_only": {"masks": ["stage"]},
    "agg_l2_stage_only": {"masks": ["stage"], "normalize": "l2"},
    "agg_l2_stage_channel": {"masks": ["stage", "channel"], "normalize": "l2"},
    "agg_l2_epochs5": {"normalize": "l2", "epochs": 5},
    "agg_l2_3seeds": {"normalize": "l2", "n_seeds": 3},
    "agg_l2_sc_3seeds": {"masks": ["stage", "channel"], "normalize": "l2", "n_seeds": 3},
    "agg_l2_sc_lr003": {"masks": ["stage", "channel"], "normalize": "l2", "lr": 0.003},
    # priors (fewer effective parameters for 118 images) and early stopping on held-out training images
    "agg_l2_decay1": {"normalize": "l2", "mask_decay": 1.0},
    "agg_l2_sc_decay1": {"masks": ["stage", "channel"], "normalize": "l2", "mask_decay": 1.0},
    "agg_l2_sc_l1": {"masks": ["stage", "channel"], "normalize": "l2", "mask_l1": 0.01},
    "agg_l2_es": {"normalize": "l2", "val_fraction": 0.2, "epochs": 40},
    "agg_l2_sc_es": {"masks": ["stage", "channel"], "normalize": "l2", "val_fraction": 0.2, "epochs": 40},
    "agg_l2_es_5seeds": {"normalize": "l2", "val_fraction": 0.2, "epochs": 40, "n_seeds": 5},
    "agg_l2_sc_es_5seeds": {"masks": ["stage", "channel"], "normalize": "l2", "val_fraction": 0.2, "epochs": 40,
                            "n_seeds": 5},
    "agg_l2_sc_decay10": {"masks": ["stage", "channel"], "normalize": "l2", "mask_decay": 10.0},
    "agg_l2_sc_es_decay10": {"masks": ["stage", "channel"], "normalize": "l2", "val_fraction": 0.2, "epochs": 40,
                             "mask_decay": 10.0},
    # spatial layout kept (each stage average-pooled to pool×pool instead of 1×1): the 92 set's EVC RDMs follow
    # the images' pixel layout (objects on a grey background), which global pooling throws away
    "agg_uniform_pool7": {"normalize": "l2", "epochs": 0, "pool": 7},
    "agg_uniform_pool3": {"normalize": "l2", "epochs": 0, "pool": 3},
    "agg_uniform_pool4": {"normalize": "l2", "epochs": 0, "pool": 4},
    "agg_uniform_pool5": {"normalize": "l2", "epochs": 0, "pool": 5},
    "agg_l2_sc_pool3": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 3},
    "agg_l2_sc_pool7": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 7},
    "agg_l2_pool7": {"normalize": "l2", "pool": 7},
    "agg_l2_sc_pool3_es": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 3, "val_fraction": 0.2,
                           "epochs": 40},
    "agg_l2_sc_pool4": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 4},
    "agg_l2_sc_pool5": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 5},
    "agg_l2_sc_pool5_3seeds": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 5, "n_seeds": 3},
    # the whole image (no 87.5 % crop; the registry's aggregation_pool5_full is the learned one) and its control
    "agg_uniform_pool5_full": {"normalize": "l2", "epochs": 0, "pool": 5, "crop_fraction": 1.0},
    "agg_l2_sc_pool4_es_3seeds": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 4, "val_fraction": 0.2,
                                  "epochs": 40, "n_seeds": 3},
    "agg_l2_sc_pool7_es": {"masks": ["stage", "channel"], "normalize": "l2", "pool": 7, "val_fraction": 0.2,
                           "epochs": 40},
}
BASELINES = ("rsa", "aggregation_uniform")


def registry_file(tmp: Path, train: list[str], test: str, head_n_boot: int | None = None,
                  metric_args: dict[str, Any] | None = None, variants: dict[str, dict[str, Any]] | None = None) -> Path:
    """The project's registry plus the transfer dataset and the extra variants (``VARIANTS`` unless given; and the
    speed overrides)."""
    reg = yaml.safe_load((REPO / "registry.yaml").read_text())
    reg.setdefault("heads", {}).update({k: {"plugin": "stage_aggregation", "args": v, "in_all": False}
                                        for k, v in (VARIANTS if variants is None else variants).items()})
    if metric_args:
        m = reg["metrics"]["algonauts_r2"]
        m["args"] = {**(m.get("args") or {}), **metric_args}
    if head_n_boot is not None:  # plugin registries merge later, so name every stage_aggregation head here
        heads = {**plugin_heads(), **reg["heads"]}
        for name, e in heads.items():
            if e.get("plugin") == "stage_aggregation":
                reg["heads"][name] = {**e, "args": {**(e.get("args") or {}), "n_boot": head_n_boot}}
    reg.setdefault("datasets", {})[f"xfer_{'_'.join(train)}_to_{test}"] = {
        "plugin": "algonauts2019", "args": {"sets": [*train, test], "predict": {test: train}}}
    path = tmp / "registry.yaml"
    path.write_text(yaml.safe_dump(reg))
    return path


def plugin_heads() -> dict[str, dict[str, Any]]:
    """Head entries declared in the plugins' own registry files."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted((REPO / "plugins").glob("*/registry.yaml")):
        out.update((yaml.safe_load(f.read_text()) or {}).get("heads") or {})
    return out


def subject_ci(r2: np.ndarray, ceiling: float, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap over subjects of the score (mean r², % of the ceiling), from the stored per-subject
    rows: the same interval as the metric's subject bootstrap, recomputed here so the table does not depend on the
    ROI row's stored CI (rsa_r2 version 3 stored the ROI rows' upper bound on the wrong scale)."""
    rng = np.random.default_rng(seed)
    boots = r2[rng.integers(0, len(r2), (n_boot, len(r2)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(100 * lo / ceiling), float(100 * hi / ceiling)


def paired(a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    d = a - b
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0"])
    ap.add_argument("--heads", nargs="+", default=[*BASELINES, "aggregation", "aggregation_l2norm", *VARIANTS])
    ap.add_argument("--train", nargs="+", default=["118"])
    ap.add_argument("--test", default="92")
    ap.add_argument("--db", default=str(REPO / ".harness" / "exp" / "cross_set.duckdb"))
    ap.add_argument("--head-n-boot", type=int, default=None,
                    help="the heads' own bootstrap draws (stage-weight CIs; not the scores'), fewer is faster")
    ap.add_argument("--metric-args", type=yaml.safe_load, default=None,
                    help='YAML merged into algonauts_r2\'s args, e.g. "{n_perm: 0}" (the p-value is not in the table)')
    ap.add_argument("--md", default=None, help="also write the table as markdown to this file")
    args = ap.parse_args()

    from harness.factory import Factory
    from harness.plan import make_plan
    from harness.runner import Runner
    from harness.settings import load_settings

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    reg_path = registry_file(db.parent, args.train, args.test, args.head_n_boot, args.metric_args)
    settings = load_settings().with_overrides(registry=reg_path, db=db)
    if settings.data_root is None:
        sys.exit("set HARNESS_DATA_ROOT (e.g. /work/shared/data)")
    f = Factory.open(settings)
    ds = f"xfer_{'_'.join(args.train)}_to_{args.test}"
    heads = list(dict.fromkeys([*BASELINES, *args.heads]))
    store = f.store()
    for head in heads:  # one head at a time: progress is visible and a killed run keeps what finished
        t0 = time.perf_counter()
        plan = make_plan(f, backbones=args.backbones, heads=[head], datasets=[ds], metrics=["algonauts_r2"])
        s = Runner(f, store).run(plan)
        print(f"{head}: {s.done} done, {s.cached} cached, {len(s.failed)} failed {s.failed} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    rows = store.query("SELECT j.backbone, j.head, s.roi, s.subject, s.raw, s.normalised, s.ci_low, s.ci_high, "
                       "TRY_CAST(s.extra ->> 'norm_ci_low' AS DOUBLE) AS nlo, "
                       "TRY_CAST(s.extra ->> 'norm_ci_high' AS DOUBLE) AS nhi, s.ceiling, j.images, j.subjects "
                       "FROM scores s JOIN jobs j USING (job_id) WHERE j.dataset = ? AND j.status = 'done' "
                       "AND s.metric = 'algonauts_r2' AND j.job_id IN (SELECT arg_max(job_id, finished_at) FROM jobs "
                       "WHERE dataset = ? AND status = 'done' GROUP BY backbone, head)", [ds, ds])  # latest run each
    title = (f"{'+'.join(args.train)} → {args.test}: % of the upper noise ceiling (devkit scale), 95 % CI over subjects; "
             "Δ = paired over subjects, in devkit %")
    table = rows_table(rows, args.backbones, heads)
    print("\n" + title)
    print(f"{'backbone':<19}{'head':<24}{'ROI':<10}{'%NC':>6}  {'95% CI':<15}{'Δ vs rsa [CI]':<26}{'Δ vs uniform [CI]':<26}")
    for r in table:
        print(f"{r[0]:<19}{r[1]:<24}{r[2]:<10}{r[3]:>6}  {r[4]:<15}{r[5]:<26}{r[6]:<26}")
    if args.md:
        md = ["| backbone | head | ROI | % NC | 95 % CI | Δ vs rsa [95 % CI] | Δ vs uniform [95 % CI] |",
              "|---|---|---|---|---|---|---|", *("| " + " | ".join(r) + " |" for r in table)]
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        import os
        import platform
        import shlex

        import torch

        env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "HARNESS_HOME") if k in os.environ)
        head = [f"# {title}", "", "Command (from the repository root, HARNESS_DATA_ROOT=/work/shared/data):", "",
                f"    {env} python {shlex.join(['benchmarks/aggregation_cross_set.py', *sys.argv[1:]])}", "",
                f"torch {torch.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
                f"at the end {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min). Each Δ is the mean "
                "over the test set's subjects of the per-subject difference in r², in % of the ceiling, with a "
                "95 % percentile bootstrap CI over subjects (10 000 draws); + / − marks a CI that excludes zero. "
                "Score CIs: the same subject bootstrap of the score itself.", ""]
        Path(args.md).write_text("\n".join(head + md) + "\n")


def rows_table(rows: Any, backbones: list[str], heads: list[str]) -> list[tuple[str, ...]]:
    """One row per backbone × ROI × head: score with its CI and the paired Δ vs each baseline (``+``/``−``: the
    CI excludes zero on that side)."""
    out: list[tuple[str, ...]] = []
    for bb in backbones:
        for roi in sorted({r for r in rows.roi if r != "mean"}):
            sub = rows[(rows.backbone == bb) & (rows.roi == roi)]
            ceil = float(sub[sub.subject == ""].ceiling.iloc[0]) if len(sub[sub.subject == ""]) else np.nan
            per = {h: g[g.subject != ""].sort_values("subject").raw.to_numpy() for h, g in sub.groupby("head")}
            for head in heads:
                main_row = sub[(sub["head"] == head) & (sub.subject == "")]
                if main_row.empty:
                    out.append((bb, head, roi, "", "(no score)", "", ""))
                    continue
                m = main_row.iloc[0]
                cols = []
                for base in BASELINES:
                    if head == base or base not in per:
                        cols.append("")
                        continue
                    d, lo, hi = (100 * x / ceil for x in paired(per[head], per[base]))
                    mark = " +" if lo > 0 else (" −" if hi < 0 else "")
                    cols.append(f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}")
                lo, hi = subject_ci(per[head], ceil)
                out.append((bb, head, roi, f"{m.normalised:.1f}", f"[{lo:.1f}, {hi:.1f}]", cols[0], cols[1]))
    return out

if __name__ == "__main__":
    main()
