"""Behaviour snapshot: run a reduced plan with a checkout's ``harness`` and compare two runs exactly.

Refactors must not change results. This script runs the same representative plan
(two backbones incl. a random-init control, ridge / RSA / a trained token head / the
stage-aggregation head, the synthetic brain and Algonauts 92) in a fresh
``HARNESS_HOME`` and database, then dumps every job id with its status and tokens key
and every score, selection and unit-score row to JSON. ``compare`` reports the first
differences and exits 1 when anything differs (floats compared exactly, NaN == NaN).

    # in the pre-refactor checkout, then in the refactored one
    (cd ../base && .venv/bin/python benchmarks/behaviour_snapshot.py run --out /tmp/before.json)
    .venv/bin/python benchmarks/behaviour_snapshot.py run --out /tmp/after.json
    python benchmarks/behaviour_snapshot.py compare /tmp/before.json /tmp/after.json

Only the CLI and the database are used, so the script works with any version that
has ``harness run`` and the ``jobs``/``scores`` tables. The full ``harness run --all``
(about 30 min on 2 CPU cores) is the complete check; this plan takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PLAN = ["-b", "efficientnet_lite0", "-b", "mobilenet_v2_random", "-H", "ridge", "-H", "rsa", "-H", "classtoken",
        "-H", "aggregation", "-d", "synthetic", "-d", "cichy92"]

TABLES = {
    "jobs": "SELECT job_id, backbone, head, dataset, subject, status, error, tokens_key, weights_digest, n_excluded "
            "FROM jobs ORDER BY job_id",
    "scores": "SELECT job_id, metric, roi, subject, raw, ceiling, normalised, ci_low, ci_high, n, p_value, extra "
              "FROM scores ORDER BY ALL",
    "selections": "SELECT job_id, unit, roi, selector, layer, layer_index, n_layers, weight, value "
                  "FROM selections ORDER BY ALL",
    "unit_scores": "SELECT job_id, metric, roi, unit, value FROM unit_scores ORDER BY ALL",
}


def run(out: Path, workdir: Path, harness: str) -> None:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="harness-snapshot-") as tmp:
        db = Path(tmp) / "snapshot.duckdb"
        env = {**os.environ, "HARNESS_HOME": str(Path(tmp) / "home"), "HF_HUB_OFFLINE": "1"}
        cmd = [*shlex.split(harness), "--quiet", "--db", str(db), "run", *PLAN, "--device", "cpu"]
        print("$", " ".join(cmd), f"(cwd {workdir})", file=sys.stderr)
        rc = subprocess.run(cmd, cwd=workdir, env=env, check=False).returncode
        if rc not in (0, 1):
            raise SystemExit(f"harness run exited {rc}")
        con = duckdb.connect(str(db), read_only=True)
        snap = {name: [list(r) for r in con.execute(sql).fetchall()] for name, sql in TABLES.items()}
        con.close()
    out.write_text(json.dumps(snap, default=str))
    print(f"{out}: " + ", ".join(f"{len(v)} {k}" for k, v in snap.items()), file=sys.stderr)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _by_job(snap: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, list]]]:
    """job label (backbone × head × dataset/subject) → job id, and table → label → rows without the job id."""
    ids = {f"{r[1]} × {r[2]} × {r[3]}/{r[4]}": r[0] for r in snap["jobs"]}
    label = {v: k for k, v in ids.items()}
    rows: dict[str, dict[str, list]] = {}
    for table in TABLES:
        per: dict[str, list] = {}
        for r in snap[table]:
            per.setdefault(label.get(r[0], r[0]), []).append(r[1:])
        rows[table] = per
    return ids, rows


def compare(a_path: Path, b_path: Path, show: int = 5) -> int:
    """Jobs are matched by label, so a changed job id (a plugin version bump) is reported apart from its numbers."""
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    ids_a, rows_a = _by_job(a)
    ids_b, rows_b = _by_job(b)
    bad = 0
    if set(ids_a) != set(ids_b):
        bad += 1
        print(f"jobs only before: {sorted(set(ids_a) - set(ids_b))}\njobs only after: {sorted(set(ids_b) - set(ids_a))}")
    moved = sorted(k for k in set(ids_a) & set(ids_b) if ids_a[k] != ids_b[k])
    print(f"jobs: {len(ids_a)} before, {len(ids_b)} after, {len(moved)} with a different job id")
    for k in moved:
        print(f"  job id changed: {k}: {ids_a[k]} → {ids_b[k]}")
    bad += bool(moved)
    for table in TABLES:
        differing = []
        for job in sorted(set(rows_a[table]) | set(rows_b[table])):
            ra, rb = rows_a[table].get(job, []), rows_b[table].get(job, [])
            same = len(ra) == len(rb) and all(len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
                                              for x, y in zip(ra, rb, strict=True))
            if not same:
                differing.append((job, ra, rb))
        n = sum(len(v) for v in rows_a[table].values())
        if not differing:
            print(f"{table}: {n} rows identical")
            continue
        bad += 1
        print(f"{table}: rows differ for {len(differing)} job(s):")
        for job, ra, rb in differing[:show]:
            print(f"  {job}: {len(ra)} rows before, {len(rb)} after")
            for x, y in [(x, y) for x, y in zip(ra, rb, strict=False) if x != y][:2]:
                print(f"    before {x}\n    after  {y}")
    not_done = [r[1:7] for snap in (a, b) for r in snap["jobs"] if r[5] != "done"]
    for r in not_done:
        print("not done:", r)
    print("IDENTICAL" if not bad else "DIFFERENT")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent.parent,
                   help="checkout to run in (its registry.yaml is used)")
    r.add_argument("--harness", default=f"{sys.executable} -c 'from harness.cli import main; main()'",
                   help="command line that starts that checkout's harness (default: this Python's)")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    ns = ap.parse_args()
    if ns.cmd == "run":
        run(ns.out, ns.workdir, ns.harness)
    else:
        raise SystemExit(compare(ns.before, ns.after))


if __name__ == "__main__":
    main()
