"""Ray executor vs the local loop on one plan, and how a run's makespan scales with the number of workers.

Part 1 (measured): one 24-job plan (random-init MobileNetV2 × 4 synthetic brains of 40 images × 3 ridge
heads on small features × 2 subjects: short jobs, so the overhead shows; the token cache is warmed first,
so every timed run fits and scores only) through
  local       : the local executor (this process, one job after another)
  ray, 1 slot : Ray on a local 2-CPU instance, each task requesting 2 CPUs (one at a time: same work as
                local, so (ray - local) / jobs is the per-job scheduling overhead: task submission, worker
                start-up and torch import, factory rebuild, rows sent back)
  ray, 2 slots: the same with 2 workers (1 CPU each); ≈ 1× expected on a 2-core machine
and checks the three leaderboards are identical.

Part 2 (simulated): a real run's job wall times (the ``jobs`` table of a ``harness run`` database,
``--jobs-db``) become sleep tasks, grouped as the Ray executor groups them (one task per dataset × backbone,
or per head with ``--split-heads``) and run on one Ray instance with 32 CPU slots where each task requests
32/N CPUs, so at most N run at once: the makespan for N = 1, 2, 8, 32 workers is measured, not computed.
Times are scaled down (``--sim-seconds`` for N = 1) and printed back at real scale, beside the lower bound
max(total / N, longest task).

Usage: python benchmarks/bench_ray.py [--jobs-db leaderboards/harness.duckdb] [--backbones K]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

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


def part1(ray: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        f = factory(root)
        plan = make_plan(f)
        assert len(plan.jobs) == 24, len(plan.jobs)
        warm = timed_run(f, root / "warm.duckdb", LocalExecutor())  # fills the token cache
        local = timed_run(f, root / "local.duckdb", LocalExecutor())
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # type: ignore[attr-defined]
        start = time.perf_counter() - t0
        try:
            one = timed_run(f, root / "ray1.duckdb", RayExecutor(cpus_per_job=2))
            two = timed_run(f, root / "ray2.duckdb", RayExecutor(cpus_per_job=1))
        finally:
            ray.shutdown()  # type: ignore[attr-defined]
        ref = Store(root / "local.duckdb").query(SCORE_SQL)
        same = all(Store(root / f"{n}.duckdb").query(SCORE_SQL).equals(ref) for n in ("ray1", "ray2"))
    n = len(plan.jobs)
    print(f"part 1: 24 jobs ({len({(j.dataset.name, j.backbone.name) for j in plan.jobs})} dataset × backbone tasks), "
          f"cold local run {warm:.1f} s (extraction included)")
    print(f"  Ray instance start (2 CPUs, not in the runs below): {start:.1f} s")
    print(f"  {'executor':<22} {'wall s':>8} {'vs local':>9}")
    print(f"  {'local':<22} {local:8.1f} {1.0:8.2f}x")
    print(f"  {'ray, 1 task at a time':<22} {one:8.1f} {local / one:8.2f}x")
    print(f"  {'ray, 2 workers':<22} {two:8.1f} {local / two:8.2f}x")
    print(f"  scheduling overhead per job (ray 1 slot - local) / {n}: {(one - local) / n:+.2f} s")
    print(f"  leaderboards identical (scores, bit for bit): {same}")


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


def part2(ray: object, db: Path, backbones: int | None, sim_seconds: float) -> None:
    jobs = measured_jobs(db, backbones)
    total = sum(j[3] for j in jobs)
    print(f"\npart 2: {len(jobs)} jobs from {db} ({len({j[1] for j in jobs})} backbones, "
          f"{len({j[0] for j in jobs})} datasets), {total / 60:.1f} min of job time in all")
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
                  f"longest {tasks[0] / 60:.1f} min")
            print(f"    {'N':>3} {'makespan min':>13} {'bound min':>10} {'speed-up':>9} {'efficiency':>11}")
            base = None
            for n in (1, 2, 8, 32):
                t0 = time.perf_counter()
                refs = [work.options(num_cpus=32 / n).remote(t * scale) for t in tasks]  # longest first
                ray.get(refs)  # type: ignore[attr-defined]
                span = (time.perf_counter() - t0) / scale
                bound = max(total / n, tasks[0])
                base = base or span
                print(f"    {n:3d} {span / 60:13.1f} {bound / 60:10.1f} {base / span:8.1f}x {base / span / n:10.0%}")
    finally:
        ray.shutdown()  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs-db", type=Path, default=Path(os.environ.get("HARNESS_DB", "leaderboards/harness.duckdb")),
                    help="database of a real `harness run` whose job wall times drive the simulation")
    ap.add_argument("--backbones", type=int, default=None, help="replicate the measured backbones' jobs to this many")
    ap.add_argument("--sim-seconds", type=float, default=30.0, help="wall time of the simulated N = 1 run")
    ap.add_argument("--skip-plan", action="store_true", help="only the simulation (part 2)")
    args = ap.parse_args()
    ray = require_ray()
    if not args.skip_plan:
        part1(ray)
    part2(ray, args.jobs_db, args.backbones, args.sim_seconds)


if __name__ == "__main__":
    main()
