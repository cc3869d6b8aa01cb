"""Wall time of `harness run --all` on the embedded default registry: cold, warm cache, all done.

cold      : empty token cache and database (extraction + fitting + scoring)
warm cache: tokens cached, fresh database (fitting + scoring only)
resume    : same database again (every job already done: planning only)

Usage: HARNESS_DATA_ROOT=../shared/data python benchmarks/bench_run_all.py [--registry registry.yaml]
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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HARNESS_HOME": f"{tmp}/home", "HARNESS_DB": f"{tmp}/a.duckdb", "HF_HUB_OFFLINE": "1"}
        extra = ["--registry", args.registry]
        cold = run(env, extra)
        warm = run({**env, "HARNESS_DB": f"{tmp}/b.duckdb"}, extra)
        resume = run({**env, "HARNESS_DB": f"{tmp}/b.duckdb"}, extra)
        import duckdb

        con = duckdb.connect(f"{tmp}/b.duckdb", read_only=True)
        n_jobs, n_failed = con.execute("SELECT count(*), count(*) FILTER (status = 'failed') FROM jobs").fetchone()
    print(f"registry: {args.registry}  data root: {os.environ.get('HARNESS_DATA_ROOT', '(unset)')}")
    print(f"jobs: {n_jobs} ({n_failed} failed)")
    print(f"cold (empty cache, empty db): {cold:7.1f} s")
    print(f"warm cache, fresh db        : {warm:7.1f} s   ({cold / warm:.1f}x faster than cold)")
    print(f"resume, all jobs done       : {resume:7.1f} s")


if __name__ == "__main__":
    main()
