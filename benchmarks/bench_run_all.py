"""Wall time of `harness run --all` on the embedded default registry: cold, warm cache, all done.

cold      : empty token cache and database (extraction + fitting + scoring)
warm cache: tokens cached, fresh database (fitting + scoring only)
resume    : same database again (every job already done: planning only)

Then the share of each head in the cold run's summed job time (``jobs.wall_s``; extraction is counted in the
first job of each dataset × backbone group) and the jobs that failed.

Usage: HARNESS_DATA_ROOT=../shared/data python benchmarks/bench_run_all.py [--registry registry.yaml]
       [--executor local|processes] [--cold-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(env: dict[str, str], extra: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "harness", "-q", *extra, "run", "--all"], env=env,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        sys.exit(f"harness run failed ({r.returncode}): {r.stderr.strip()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default=str(Path(__file__).resolve().parents[1] / "registry.yaml"))
    ap.add_argument("--executor", default="local")
    ap.add_argument("--cold-only", action="store_true", help="skip the warm-cache and resume runs")
    args = ap.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HARNESS_HOME": f"{tmp}/home", "HARNESS_DB": f"{tmp}/a.duckdb", "HF_HUB_OFFLINE": "1",
               "HARNESS_EXECUTOR": args.executor}
        extra = ["--registry", args.registry]
        cold = run(env, extra)
        warm = resume = None
        if not args.cold_only:
            warm = run({**env, "HARNESS_DB": f"{tmp}/b.duckdb"}, extra)
            resume = run({**env, "HARNESS_DB": f"{tmp}/b.duckdb"}, extra)
        con = duckdb.connect(f"{tmp}/a.duckdb", read_only=True)
        n_jobs, n_failed = con.execute("SELECT count(*), count(*) FILTER (status = 'failed') FROM jobs").fetchone()
        shares = con.execute("SELECT head, count(*), sum(wall_s), sum(wall_s) / (SELECT sum(wall_s) FROM jobs) "
                             "FROM jobs GROUP BY head ORDER BY 3 DESC").fetchall()
        failed = con.execute("SELECT backbone, head, dataset, error FROM jobs WHERE status = 'failed'").fetchall()
    print(f"registry: {args.registry}  data root: {os.environ.get('HARNESS_DATA_ROOT', '(unset)')}  "
          f"executor: {args.executor}")
    print(f"jobs: {n_jobs} ({n_failed} failed)")
    print(f"cold (empty cache, empty db): {cold:7.1f} s   ({cold / 300:.2f}x the 5-minute target)")
    if warm is not None and resume is not None:
        print(f"warm cache, fresh db        : {warm:7.1f} s   ({cold / warm:.1f}x faster than cold)")
        print(f"resume, all jobs done       : {resume:7.1f} s")
    print("head                        jobs   job s   share")
    for head, n, secs, share in shares:
        print(f"{head:26s} {n:5d} {secs:7.1f} {100 * share:6.1f} %")
    for row in failed:
        print("failed:", *row)


if __name__ == "__main__":
    main()
