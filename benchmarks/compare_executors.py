"""Issue 14's "done when", checked on a real run: the same ``harness run`` through ``--executor local`` and
``--executor ray`` (a Ray instance of this machine's cores, started by the CLI) into two databases, then the
stored rows and the ``leaderboard`` view diffed. Prints ``identical`` or the differing rows.

Both runs go through the CLI exactly as a user types them, each with its own ``HARNESS_HOME`` (so the Ray
run extracts its own tokens in its workers instead of reading the local run's cache). What is compared:
``jobs`` (job ids, status, error: no duplicate or missing job), ``scores`` (every stored number, bit for
bit) and the ``leaderboard`` view (exactly; its avg() over subjects sums in the file's row order, so a
difference in the last bit there, with equal ``scores``, would be reported as such, not hidden).
Both runs use one torch thread (a Ray task's threads are its ``--cpus-per-job``, default 1; the local run
gets OMP_NUM_THREADS=1): float32 sums split over another number of threads round differently (bench_ray.py
part 1 prints that gap), so bit-for-bit equality is a claim at equal threads per job.

The full default ``harness run --all`` (192 jobs: the registry's entries plus those installed plugins add,
trained heads on real data) takes hours on 2 cores, so by default the command is ``harness run --all`` on the
project's ``registry.yaml`` with ``plugin_entries: false`` (its own 4 backbones, ridge and rsa heads, 3
datasets; written to ``--out``). ``--full`` uses the registry as it is (``$HARNESS_REGISTRY`` or the
project's); arguments after ``--`` replace ``--all`` (e.g. ``-- -b mobilenet_v2 -d cichy92``).

Usage: python benchmarks/compare_executors.py [--out DIR] [--full] [--diff-only] [-- RUN-SELECTION...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from harness.store import Store

REPO = Path(__file__).resolve().parents[1]
QUERIES = {
    "jobs": "SELECT job_id, backbone, head, dataset, subject, status, error, tokens_key FROM jobs",
    "scores": "SELECT * EXCLUDE (extra), extra::VARCHAR AS extra FROM scores",
    "leaderboard": "SELECT * FROM leaderboard",
}


def subset_registry(out: Path) -> Path:
    """The project registry without the entries installed plugins contribute."""
    reg = yaml.safe_load((REPO / "registry.yaml").read_text())
    path = out / "registry.yaml"
    path.write_text(yaml.safe_dump({**reg, "plugin_entries": False}, sort_keys=False))
    return path


def run(executor: str, out: Path, selection: list[str], registry: Path) -> float:
    """One ``harness run`` in its own process, home and database; returns its wall time."""
    env = {**os.environ, "HARNESS_HOME": str(out / f"home-{executor}"), "HARNESS_DB": str(out / f"{executor}.duckdb"),
           "HARNESS_REGISTRY": str(registry),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # as a Ray task with --cpus-per-job 1 (the default)
    cmd = [sys.executable, "-m", "harness", "-q", "run", *selection, "--executor", executor]
    print("$", " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=out)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"harness run --executor {executor}: exit {done.returncode}")
    print(f"  {executor}: {wall:.1f} s", flush=True)
    return wall


def table(db: Path, sql: str) -> pd.DataFrame:
    df = Store(db).query(sql)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def diff(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The rows (of both sides, sorted alike) where any cell differs exactly; missing equals missing.
    Frames of different shapes are all difference."""
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return pd.concat([a.assign(side="local"), b.assign(side="ray")])
    a, b = a.astype(object), b.astype(object)
    same = (a == b).fillna(False).astype(bool) | (a.isna() & b.isna())
    rows = ~same.all(axis=1)
    return pd.concat([a[rows].assign(side="local"), b[rows].assign(side="ray")]).sort_index(kind="stable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="keep the two homes and databases here")
    ap.add_argument("--full", action="store_true", help="the registry with plugin entries (hours on 2 cores)")
    ap.add_argument("--diff-only", action="store_true", help="compare the databases already in --out")
    ap.add_argument("selection", nargs="*", help="harness run selection (after --), default: --all")
    args = ap.parse_args()
    selection = args.selection or ["--all"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        if args.diff_only and args.out is None:
            raise SystemExit("--diff-only: pass --out, the folder of an earlier comparison")
        registry = (Path(os.environ.get("HARNESS_REGISTRY", REPO / "registry.yaml")) if args.full
                    else subset_registry(out))
        print(f"registry: {registry}")
        walls = {ex: 0.0 if args.diff_only else run(ex, out, selection, registry) for ex in ("local", "ray")}
        same = True
        for name, sql in QUERIES.items():
            a, b = table(out / "local.duckdb", sql), table(out / "ray.duckdb", sql)
            d = diff(a, b)
            equal = d.empty
            same &= equal
            print(f"  {name}: {len(a)} rows local, {len(b)} rows ray: {'identical' if equal else 'DIFFERENT'}")
            if not equal:
                with pd.option_context("display.width", 200, "display.max_columns", 12):
                    print(d.head(20).to_string())
        n = len(table(out / "local.duckdb", QUERIES["jobs"]))
        if not args.diff_only:
            print(f"{n} jobs; local {walls['local']:.1f} s, ray {walls['ray']:.1f} s "
                  f"(ray / local = {walls['ray'] / walls['local']:.2f}, Ray start-up included)")
        print("identical" if same else "leaderboards differ")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
