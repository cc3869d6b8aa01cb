"""Data-scaling tables (Yang, Gee & Shi 2024 §5.2, Fig. 10): score vs number of training stimuli per head.

Runs ``harness run -d <train_subset entries> -b <backbone> -H <head>`` for every registry entry tagged
``data_scaling`` that wraps each requested dataset (one call per dataset × head, so an interrupted crossing
resumes: finished jobs are skipped), then prints markdown tables read from the ``data_scaling`` view:

1. score ± 95 % t-interval over subsample seeds per head and n_train (the largest n is the full training set);
2. per head: the full-data score, the first n reaching 90 % of it, and the share kept at the smallest n;
3. the paper's claim, "FactorTopy degrades less than the unfactorised heads as data shrinks", tested paired
   over seeds (seed i is the same subsample for every head): per seed, share = score / full-data score, and the
   mean difference FactorTopy − head with its 95 % t-interval at each n below full.

Runs go to a private ``HARNESS_HOME``/``HARNESS_DB`` (``--home``), so the script can be re-run later (e.g. after
FactorTopy's fit gets faster: delete the home to re-fit, or keep it to only re-print).

    python benchmarks/data_scaling_tables.py [--datasets synthetic cowley_v4_210325] [--heads ridge factortopy …]
        [--sizes 20 35 …] [--home /tmp/hh-data-scaling] [--tables-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: cheapest first, so a crossing cut short still has the baselines
HEADS = ("ridge", "classtoken", "patchtoken", "gnet", "factortopy", "factortopy_no_topology", "factortopy_no_layer",
         "factortopy_no_space", "factortopy_no_scale", "factortopy_space3")
#: the heads without FactorTopy's factorisation (the paper's comparison)
UNFACTORISED = ("ridge", "classtoken", "patchtoken", "gnet")


def scaling_entries(datasets: list[str], sizes: list[int] | None) -> dict[str, list[tuple[int, str]]]:
    """Registry entries tagged ``data_scaling`` per wrapped dataset, as (n_train, entry) sorted by n."""
    from harness.plugins import build_catalog, make_manager
    from harness.registry import load_registry
    from harness.settings import load_settings

    settings = load_settings()
    reg = load_registry(build_catalog(*make_manager()), ROOT / "registry.yaml", settings, validate=False)
    out: dict[str, list[tuple[int, str]]] = {d: [] for d in datasets}
    for e in reg.of_kind("dataset"):
        d, n = e.args.get("dataset"), e.args.get("n_train")
        if e.plugin == "train_subset" and "data_scaling" in e.tags and d in out and (sizes is None or n in sizes):
            out[d].append((int(n), e.name))
    for d, es in out.items():
        if not es:
            raise SystemExit(f"registry.yaml: no train_subset entry tagged data_scaling wraps {d!r}")
        es.sort()
    return out


def run_crossing(entries: dict[str, list[tuple[int, str]]], backbone: str, heads: list[str], env: dict[str, str]) -> None:
    harness = str(Path(sys.executable).with_name("harness"))
    for head in heads:  # head-major: a crossing cut short has every dataset for the heads it reached
        for es in entries.values():
            cmd = [harness, "run", "-d", ",".join(n for _, n in es), "-b", backbone, "-H", head]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
            tail = [ln for ln in r.stdout.splitlines() if ln.startswith("run ")]
            print(f"<!-- {' '.join(cmd[1:])}: {time.perf_counter() - t0:.0f} s, rc {r.returncode}; "
                  f"{tail[-1] if tail else r.stderr.strip().splitlines()[-1:]} -->", flush=True)


def per_seed(db: Path, backbone: str, metric: str) -> pd.DataFrame:
    """One row per (head, dataset, n_train, subsample seed): the job's score on all units."""
    from harness.store import Store

    return Store(db).query(
        """SELECT j.head, j.config->'dataset'->'args'->>'dataset' AS dataset,
                  CAST(j.config->'dataset'->'args'->>'n_train' AS INTEGER) AS n_train,
                  CAST(split_part(j.subject, '@seed', 2) AS INTEGER) AS seed, sc.raw AS score
           FROM jobs j JOIN scores sc USING (job_id)
           WHERE j.status = 'done' AND j.config->'dataset'->>'plugin' = 'train_subset' AND NOT j.random_init
             AND j.backbone = ? AND sc.metric = ? AND sc.roi = 'all' AND isfinite(sc.raw)""", [backbone, metric])


def t_ci(x: np.ndarray) -> float:
    return float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def fmt(v: float, ci: float | None = None, nd: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.{nd}f}" + (f" ± {ci:.{nd}f}" if ci is not None and np.isfinite(ci) else "")


def tables(db: Path, dataset: str, backbone: str, metric: str, heads: list[str]) -> str:
    from harness.store import Store

    view = Store(db).query("SELECT * FROM data_scaling WHERE dataset = ? AND backbone = ? AND metric = ? AND roi = 'all' "
                           "AND NOT random_init", [dataset, backbone, metric])
    view = view[view["head"].isin(heads)]
    if view.empty:
        return f"### {dataset}: no finished jobs\n"
    sizes = sorted(view["n_train"].unique())
    seeds = {int(n): int(k) for n, k in view.groupby("n_train")["n_jobs"].max().items()}
    order = [h for h in heads if h in set(view["head"])]
    lines = [f"### {dataset} ({backbone}, {metric}, all units; ± = 95 % t-interval over subsample seeds)", "",
             "| head | " + " | ".join(f"n={n} ({seeds[n]} seed{'s' if seeds[n] > 1 else ''})" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for h in order:
        v = view[view["head"] == h].set_index("n_train")
        lines.append(f"| {h} | " + " | ".join(fmt(v.at[n, "score"], v.at[n, "ci"]) if n in v.index else "–"
                                             for n in sizes) + " |")
    lines += ["", f"| head | full-data score (n={sizes[-1]}) | first n with ≥ 90 % of it | share at n={sizes[0]} |",
              "|---|---|---|---|"]
    for h in order:
        v = view[view["head"] == h].set_index("n_train").sort_index()
        if sizes[-1] not in v.index:
            lines.append(f"| {h} | – | – | – |")
            continue
        reach = v.index[v["share_of_full"] >= 0.9]
        lines.append(f"| {h} | {fmt(v.at[sizes[-1], 'score'])} | {int(reach[0]) if len(reach) else '–'} | "
                     f"{fmt(v.at[sizes[0], 'share_of_full'], nd=2) if sizes[0] in v.index else '–'} |")
    seed_rows = per_seed(db, backbone, metric)
    seed_rows = seed_rows[seed_rows["dataset"] == dataset]
    full = seed_rows[seed_rows["n_train"] == sizes[-1]].groupby("head")["score"].mean()
    seed_rows = seed_rows[seed_rows["n_train"] < sizes[-1]].assign(share=lambda f: f["score"] / f["head"].map(full))
    ft = "factortopy"
    wide = {v: seed_rows.pivot_table(index=["n_train", "seed"], columns="head", values=v) for v in ("share", "score")}
    others = [h for h in order if h != ft and h in wide["share"].columns]
    if ft not in wide["share"].columns or not others:
        return "\n".join(lines) + "\n"
    lines += paired(wide["share"], sizes[:-1], ft, others,
                    f"Share of the full-data score kept, {ft} − head (paired over seeds; > 0: {ft} degrades less)")
    lines += paired(wide["score"], sizes[:-1], ft, others,
                    f"Score, {ft} − head (paired over seeds; > 0: {ft} predicts better at that n)")
    lines.append("\n`*`: the 95 % interval excludes 0.")
    n0 = sizes[0]
    if n0 in wide["share"].index.get_level_values(0):
        verdict = []
        for h in [h for h in UNFACTORISED if h in others]:
            d, a = ((wide[v].loc[n0][ft] - wide[v].loc[n0][h]).dropna().to_numpy() for v in ("share", "score"))
            if len(d) < 2:
                continue
            ci = t_ci(d)
            word = ("less (holds)" if d.mean() - ci > 0 else "more (the opposite)" if d.mean() + ci < 0
                    else "indistinguishably (not shown)")
            verdict.append(f"{h}: {ft} degrades {word}, share {d.mean():+.2f} ± {ci:.2f}, score {a.mean():+.3f} ± "
                           f"{t_ci(a):.3f}")
        if verdict:
            lines.append(f"\nAt n={n0}, vs the unfactorised heads: " + "; ".join(verdict) + ".")
    return "\n".join(lines) + "\n"


def paired(wide: pd.DataFrame, sizes: list[int], ft: str, others: list[str], title: str) -> list[str]:
    """Markdown rows: per n, mean ± 95 % t-interval over seeds of ``ft − head`` (``*``: excludes 0)."""
    lines = ["", title + ":", "", "| n | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
    for n in sizes:
        if n not in wide.index.get_level_values(0):
            continue
        cells = []
        for h in others:
            d = (wide.loc[n][ft] - wide.loc[n][h]).dropna().to_numpy()
            ci = t_ci(d)
            cells.append(fmt(float(d.mean()), ci, nd=3) + ("*" if abs(d.mean()) > ci else "") if len(d) else "–")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["synthetic", "cowley_v4_210325"])
    p.add_argument("--heads", nargs="+", default=list(HEADS))
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="only these n_train (default: every entry)")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--metric", default="pearson")
    p.add_argument("--home", type=Path, default=Path("/tmp/hh-data-scaling"))
    p.add_argument("--tables-only", action="store_true", help="print the tables from the database; run nothing")
    p.add_argument("--out", type=Path, default=None, help="also write the tables here, under a header naming the "
                   "command, torch build, machine load and the jobs' wall time")
    a = p.parse_args()
    db = a.home / "leaderboard.duckdb"
    env = {**os.environ, "HARNESS_HOME": str(a.home), "HARNESS_DB": str(db)}
    env.setdefault("OMP_NUM_THREADS", "1")
    os.environ.update(env)
    entries = scaling_entries(a.datasets, a.sizes)
    if not a.tables_only:
        run_crossing(entries, a.backbone, a.heads, env)
    text = "\n".join(tables(db, d, a.backbone, a.metric, a.heads) for d in a.datasets)
    print(text)
    if a.out is not None:
        a.out.write_text(header(db, a.backbone) + "\n" + text)


def header(db: Path, backbone: str) -> str:
    """Where the numbers come from: the command, torch build, load now and the jobs' own wall time."""
    import platform

    import torch

    from harness.store import Store

    jobs = Store(db).query("SELECT head, count(*) AS n, sum(wall_s) AS s, min(started_at) AS t0, max(finished_at) AS t1 "
                           "FROM jobs WHERE status = 'done' AND backbone = ? AND config->'dataset'->>'plugin' = "
                           "'train_subset' GROUP BY head ORDER BY head", [backbone])
    per_head = ", ".join(f"{r.head} {r.n} jobs {r.s / 60:.0f} min" for r in jobs.itertuples())
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"Generated by `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}` "
            f"(runs: `harness run -d <entries> -b {backbone} -H <head>`, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}).\n"
            f"torch {torch.__version__} on CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
            f"load average when printed {load}; jobs ran {jobs['t0'].min():%Y-%m-%d %H:%M} – {jobs['t1'].max():%H:%M}: {per_head}.\n")


if __name__ == "__main__":
    main()
