"""Ray executor vs the local loop on one plan, and how a run's makespan scales with the number of workers.

Part 1 (measured): one 24-job plan on a small registry written here: one backbone (torchvision MobileNetV2,
random init: no weights to fetch) × 4 synthetic voxel datasets (``synthetic_voxels``: 40 images of 32 px,
2 subjects, 10 voxels per ROI) × 3 ridge heads on small features (global pool, pool 1, layer concat), metric
pearson with 20 bootstrap draws. Short jobs, so the overhead shows;
the token cache is warmed by a first local run, so every timed run fits and scores only. The plan goes through
  local                  : the local executor (this process, one job after another; run it with
                           OMP_NUM_THREADS=1: 1 torch thread, as a 1-CPU Ray task)
  ray, 1 worker          : Ray on a local 1-CPU instance, 1 CPU per task: the same work as local, one task
                           at a time, so (ray - local) / jobs is the per-job scheduling overhead, printed
                           beside Ray's own round trip (an empty task, timed). The Ray runs
                           include starting their worker processes (torch and plugin imports), as a real
                           run does once per worker; the local runs' process already has them
  ray, 2 workers         : a 2-CPU instance, 1 CPU per task; ≈ 1× local expected on a 2-core machine
  ray, 1 task × 2 threads: the same instance, 2 CPUs per task (a task's torch threads = its CPUs)
The stored scores are compared with the local run's: float32 reductions split over a different number of
threads round differently, so the runs at the local run's thread count must match bit for bit (the script
fails otherwise) and the 2-thread run's largest difference is printed.

Part 2 (simulated with real Ray): job wall times from the ``jobs`` table of a run (default: part 1's local
run; ``--jobs-db`` for a real ``harness run --all`` database) become sleep tasks, grouped as the Ray executor
groups them (one task per dataset × backbone; and one per head, as ``--split-heads`` makes them). ``--backbones K``
(default 32) replicates the measured backbones' jobs, each keeping its measured time, into a zoo of K
backbones: part 1's plan alone has only 4 dataset × backbone tasks, which cannot occupy 8 or 32 workers.
The tasks run through one real Ray instance started with 32 *logical* CPUs, each task requesting 32/N of
them, so at most N run at once: the makespan for N = 1, 2, 8, 32 is measured, not computed. Real Ray honours
N = 32 on 2 cores because a sleeping task uses no CPU: the 32 worker processes are started (and warmed)
before timing, and the only CPU work left is Ray's dispatch. Times are scaled down (``--sim-seconds`` of
sleep for N = 1) and printed back at real scale, beside the lower bound max(total / N, longest task) and the
makespan of greedy list scheduling computed without dispatch cost ("greedy"). Ray's per-task dispatch is not
scaled down (and on a loaded 2-core machine it competes with 32 worker processes), so with sub-second
scaled tasks the measured efficiency at large N is a lower bound for tasks of real length.

Usage: python benchmarks/bench_ray.py [--jobs-db DB] [--backbones K] [--sim-seconds S] [--out DIR]
"""

from __future__ import annotations

import argparse
import heapq
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import yaml

from harness.errors import StoreError
from harness.executors.local import LocalExecutor
from harness.executors.ray_cluster import RayExecutor, require_ray
from harness.factory import ExtractionOptions, Factory
from harness.plan import make_plan
from harness.runner import Runner
from harness.settings import load_settings
from harness.store import Store

SCORE_SQL = "SELECT * EXCLUDE (extra) FROM scores ORDER BY ALL"


def plan_registry(root: Path) -> Path:
    ridge = {"alphas": [1.0, 100.0, 10000.0]}
    reg = {
        "plugin_entries": False,
        "backbones": {"mnv2_rand": {"plugin": "torchvision", "random_init": True}},
        "heads": {"ridge_global": {"plugin": "ridge", "args": {**ridge, "features": "global"}},
                  "ridge_pool1": {"plugin": "ridge", "args": {**ridge, "pool": 1}},
                  "ridge_cat": {"plugin": "ridge", "args": {**ridge, "features": "global", "layer_mode": "concat"}}},
        "metrics": {"pearson": {"plugin": "pearson", "args": {"n_boot": 20}}},
        "datasets": {f"syn{i}": {"plugin": "synthetic_voxels",
                                 "args": {"backbone": "mnv2_rand", "n_stimuli": 40, "voxels_per_roi": 10,
                                          "n_subjects": 2, "image_size": 32, "seed": i}} for i in range(4)},
    }
    path = root / "registry.yaml"
    path.write_text(yaml.safe_dump(reg))
    return path


def factory(root: Path) -> Factory:
    path = plan_registry(root)
    settings = load_settings().with_overrides(registry=path, home=root / "home")
    return Factory.open(settings, registry=path, extraction=ExtractionOptions())


def timed_run(f: Factory, db: Path, executor: object) -> float:
    t0 = time.perf_counter()
    summary = Runner(f, Store(db), executor=executor).run(make_plan(f))  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    print(f"  ({db.stem}: {wall:.1f} s)", flush=True)
    if summary.failed or summary.done != 24:
        raise SystemExit(f"plan did not complete: {summary.done} done, failed {summary.failed[:2]}")
    return wall


def score_gap(a: Path, b: Path) -> float:
    """0.0 when the two runs stored the same scores bit for bit, else the largest absolute difference
    (inf when the rows themselves differ)."""
    x, y = Store(a).query(SCORE_SQL), Store(b).query(SCORE_SQL)
    if x.equals(y):
        return 0.0
    if x.shape != y.shape or not x.select_dtypes(exclude="number").equals(y.select_dtypes(exclude="number")):
        return float("inf")
    num = x.select_dtypes(include="number").columns
    return float((x[num].astype(float) - y[num].astype(float)).abs().max().max())


def part1(ray: Any, root: Path) -> Path:
    """Runs the plan five times under ``root``; returns the local run's database (its job times feed part 2)."""
    f = factory(root)
    plan = make_plan(f)
    n = len(plan.jobs)
    assert n == 24, n
    warm = timed_run(f, root / "warm.duckdb", LocalExecutor())  # fills the token cache
    local = timed_run(f, root / "local.duckdb", LocalExecutor())
    walls: dict[str, float] = {}
    starts: list[float] = []
    for cpus, runs in ((1, {"ray1": 1.0}), (2, {"ray2": 1.0, "ray2t": 2.0})):
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        starts.append(time.perf_counter() - t0)
        try:
            for name, per_job in runs.items():  # the first run starts the workers: a real run pays that too
                walls[name] = timed_run(f, root / f"{name}.duckdb", RayExecutor(cpus_per_job=per_job))
            if cpus == 1:  # after the timed run, not to warm its worker
                noop = ray.remote(lambda: None)
                ray.get(noop.remote())
                t0 = time.perf_counter()
                for _ in range(50):
                    ray.get(noop.remote())
                round_trip = (time.perf_counter() - t0) / 50
        finally:
            ray.shutdown()
    gaps = {name: score_gap(root / "local.duckdb", root / f"{name}.duckdb") for name in walls}
    tasks = len({(j.dataset.name, j.backbone.name) for j in plan.jobs})
    print(f"part 1: {n} jobs ({tasks} dataset × backbone tasks), cold local run {warm:.1f} s (extraction "
          f"included); the timed runs below hit the token cache")
    print(f"  Ray instance start (not in the runs below): {starts[0]:.1f} s (1 CPU), {starts[1]:.1f} s (2 CPUs)")
    print(f"  {'executor':<34} {'wall s':>7} {'ms/job':>7} {'speed vs local':>15}  scores vs local")
    rows = (("local", local, "local"), ("ray, 1 worker (1 CPU, 1 thread)", walls["ray1"], "ray1"),
            ("ray, 2 workers (1 CPU, 1 thread)", walls["ray2"], "ray2"),
            ("ray, 1 task at a time × 2 threads", walls["ray2t"], "ray2t"))
    for label, wall, name in rows:
        gap = gaps.get(name, 0.0)
        same = "-" if name == "local" else ("bit for bit" if gap == 0.0 else f"max |diff| {gap:.1e}")
        print(f"  {label:<34} {wall:7.1f} {wall / n * 1e3:7.0f} {local / wall:14.2f}x  {same}")
    print(f"  scheduling overhead per job, (ray 1 worker - local) / {n}: {(walls['ray1'] - local) / n * 1e3:+.0f} "
          f"ms/job (ray 1 worker / local = {walls['ray1'] / local:.2f})")
    print(f"  Ray's own round trip (empty task, warm worker, mean of 50): {round_trip * 1e3:.1f} ms per task "
          f"({tasks} tasks: {round_trip * tasks / n * 1e3:.1f} ms/job)", flush=True)
    threads = torch.get_num_threads()
    same_threads = ["ray1", "ray2"] if threads == 1 else ["ray2t"] if threads == 2 else []
    if any(gaps[name] != 0.0 for name in same_threads):
        raise SystemExit(f"part 1: Ray at the local run's thread count ({threads}) differs from it "
                         f"(databases in {root})")
    return root / "local.duckdb"


def measured_jobs(db: Path, backbones: int | None) -> list[tuple[str, str, str, float]]:
    """(dataset, backbone, head, wall_s) of every finished job; ``backbones`` replicates the measured backbones'
    rows up to that many (a zoo of similar nets), keeping each job's own measured time."""
    try:
        rows = Store(db).query("SELECT dataset, backbone, head, wall_s FROM jobs WHERE status = 'done'")
    except StoreError as exc:
        raise SystemExit(f"--jobs-db: {exc}") from None
    jobs = [tuple(r) for r in rows.itertuples(index=False)]
    if not jobs:
        raise SystemExit(f"{db}: no finished jobs to take times from (run `harness run` first, or pass --jobs-db)")
    have = sorted({j[1] for j in jobs})
    if backbones and backbones > len(have):
        extra = [(d, f"{b}~copy{k}", h, w) for k in range(1, -(-backbones // len(have))) for d, b, h, w in jobs]
        jobs = (jobs + extra)[: len(jobs) * backbones // len(have)]
    return jobs  # type: ignore[return-value]


def units_of(jobs: list[tuple[str, str, str, float]], split_heads: bool) -> list[float]:
    """Task durations as the Ray executor would form the tasks (extraction time is not in ``wall_s``)."""
    sizes: dict[tuple[str, ...], float] = defaultdict(float)
    for d, b, h, w in jobs:
        sizes[(d, b, h) if split_heads else (d, b)] += w
    return sorted(sizes.values(), reverse=True)


def greedy(tasks: list[float], n: int) -> float:
    """Makespan of the same tasks, longest first, each to the first free of ``n`` workers (what Ray's queue
    does) with no dispatch cost: the scheduling alone, beside the measured Ray makespan."""
    free = [0.0] * n
    for t in tasks:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free)


def part2(ray: Any, db: Path, backbones: int | None, sim_seconds: float) -> None:
    jobs = measured_jobs(db, backbones)
    total = sum(j[3] for j in jobs)
    print(f"\npart 2: {len(jobs)} jobs from {db} ({len({j[1] for j in jobs})} backbones, "
          f"{len({j[0] for j in jobs})} datasets), {total:.1f} s of job time in all; job wall s: min "
          f"{min(j[3] for j in jobs):.2f}, median {sorted(j[3] for j in jobs)[len(jobs) // 2]:.2f}, "
          f"max {max(j[3] for j in jobs):.2f}; N = 1 run scaled to {sim_seconds:.0f} s of sleep")
    scale = sim_seconds / total
    ray.init(num_cpus=32, include_dashboard=False, log_to_driver=False)  # type: ignore[attr-defined]
    try:
        @ray.remote  # type: ignore[attr-defined]
        def work(seconds: float) -> float:
            time.sleep(seconds)
            return seconds

        ray.get([work.options(num_cpus=1).remote(0.5) for _ in range(32)])  # type: ignore[attr-defined]  # start 32 workers
        for split in (False, True):
            tasks = units_of(jobs, split)
            print(f"  tasks: one per {'dataset × backbone × head' if split else 'dataset × backbone'}: {len(tasks)}, "
                  f"longest {tasks[0]:.2f} s (real scale)")
            print(f"    {'N':>3} {'makespan s':>11} {'greedy s':>9} {'bound s':>9} {'speed-up':>9} {'efficiency':>11}")
            base = None
            for n in (1, 2, 8, 32):
                t0 = time.perf_counter()
                refs = [work.options(num_cpus=32 / n).remote(t * scale) for t in tasks]  # longest first
                ray.get(refs)  # type: ignore[attr-defined]
                span = (time.perf_counter() - t0) / scale
                bound = max(total / n, tasks[0])
                base = base or span
                print(f"    {n:3d} {span:11.2f} {greedy(tasks, n):9.2f} {bound:9.2f} {base / span:8.1f}x "
                      f"{base / span / n:10.0%}", flush=True)
    finally:
        ray.shutdown()  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs-db", type=Path, default=None,
                    help="database of a real `harness run` whose job wall times drive the simulation "
                         "(default: part 1's local run)")
    ap.add_argument("--backbones", type=int, default=32,
                    help="replicate the measured backbones' jobs to this many (a zoo; 0: the plan as measured)")
    ap.add_argument("--sim-seconds", type=float, default=60.0, help="wall time of the simulated N = 1 run")
    ap.add_argument("--skip-plan", action="store_true", help="only the simulation (part 2; needs --jobs-db)")
    ap.add_argument("--out", type=Path, default=None, help="keep part 1's homes and databases here")
    args = ap.parse_args()
    ray = require_ray()
    print(f"ray {ray.__version__}; torch {torch.__version__}; {os.cpu_count()} cores; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    if args.skip_plan and args.jobs_db is None:
        raise SystemExit("--skip-plan: pass --jobs-db (the simulation needs measured job times)")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        db = args.jobs_db if args.skip_plan else part1(ray, root)
        part2(ray, args.jobs_db or db, args.backbones, args.sim_seconds)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
