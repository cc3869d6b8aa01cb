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
    "agg_l2_stage_channel": {"masks": ["stage", "channel"], "normalize": "l2"},
    "agg_l2_epochs5": {"normalize": "l2", "epochs": 5},
    "agg_l2_3seeds": {"normalize": "l2", "n_seeds": 3},
    "agg_l2_sc_3seeds": {"masks": ["stage", "channel"], "normalize": "l2", "n_seeds": 3},
    "agg_l2_sc_lr003": {"masks": ["stage", "channel"], "normalize": "l2", "lr": 0.003},
}
BASELINES = ("rsa", "aggregation_uniform")


def registry_file(tmp: Path, train: list[str], test: str) -> Path:
    """The project's registry plus the transfer dataset and the extra variants."""
    reg = yaml.safe_load((REPO / "registry.yaml").read_text())
    reg.setdefault("heads", {}).update({k: {"plugin": "stage_aggregation", "args": v, "in_all": False}
                                        for k, v in VARIANTS.items()})
    reg.setdefault("datasets", {})[f"xfer_{'_'.join(train)}_to_{test}"] = {
        "plugin": "algonauts2019", "args": {"sets": [*train, test], "predict": {test: train}}}
    path = tmp / "registry.yaml"
    path.write_text(yaml.safe_dump(reg))
    return path


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
    args = ap.parse_args()

    from harness.factory import Factory
    from harness.plan import make_plan
    from harness.plugins import default_catalog
    from harness.registry import load_registry
    from harness.runner import Runner
    from harness.settings import load_settings
    from harness.store import Store

    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    reg_path = registry_file(db.parent, args.train, args.test)
    settings = load_settings().with_overrides(registry=reg_path, db=db)
    if settings.data_root is None:
        sys.exit("set HARNESS_DATA_ROOT (e.g. /work/shared/data)")
    cat = default_catalog()
    f = Factory(catalog=cat, registry=load_registry(cat, reg_path), settings=settings)
    ds = f"xfer_{'_'.join(args.train)}_to_{args.test}"
    heads = list(dict.fromkeys([*BASELINES, *args.heads]))
    store = Store(db)
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
                       "AND s.metric = 'algonauts_r2'", [ds])
    print(f"\n{'+'.join(args.train)} → {args.test}: % of the upper noise ceiling (devkit scale), 95 % CI over subjects; "
          "Δ = paired over subjects, in devkit %")
    print(f"{'backbone':<19}{'head':<24}{'ROI':<10}{'%NC':>6}  {'95% CI':<15}{'Δ vs rsa [CI]':<26}{'Δ vs uniform [CI]':<26}")
    for bb in args.backbones:
        for roi in sorted({r for r in rows.roi if r != "mean"}):
            sub = rows[(rows.backbone == bb) & (rows.roi == roi)]
            ceil = float(sub[sub.subject == ""].ceiling.iloc[0]) if len(sub[sub.subject == ""]) else np.nan
            per = {h: g[g.subject != ""].sort_values("subject").raw.to_numpy() for h, g in sub.groupby("head")}
            for head in heads:
                main_row = sub[(sub["head"] == head) & (sub.subject == "")]
                if main_row.empty:
                    print(f"{bb:<19}{head:<24}{roi:<10}  (no score)")
                    continue
                m = main_row.iloc[0]
                cols = []
                for base in BASELINES:
                    if head == base or base not in per:
                        cols.append("")
                        continue
                    d, lo, hi = (100 * x / ceil for x in paired(per[head], per[base]))
                    mark = " +" if lo > 0 else (" −" if hi < 0 else "")
                    cols.append(f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]{mark}")
                print(f"{bb:<19}{head:<24}{roi:<10}{m.normalised:>6.1f}  [{m.nlo:.1f}, {m.nhi:.1f}]".ljust(74)
                      + f"{cols[0]:<26}{cols[1]:<26}")


if __name__ == "__main__":
    main()
