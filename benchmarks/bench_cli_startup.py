"""Start-up wall time of the everyday CLI commands against ``python -c "import harness"`` in the same run.

Each command runs in a fresh process (median of ``--repeats``, interleaved so load changes hit every
command alike) with a temporary home and database, the checkout's ``registry.yaml`` and
``HARNESS_DATA_ROOT`` (default ``../shared/data`` beside the checkout, else the environment's); the ratio
to the bare ``import harness`` process is what to compare across machines, and each command is checked
against the 1 s target of issue 12. The CPU column (user + system seconds of the process) moves far less
than wall time when other processes share the machine. ``plan`` and ``weights status`` ask the model
libraries which weight file each entry needs once per library version and home
(:mod:`harness.kit.libfacts`); their first run in the new home is reported on its own rows ("new home"),
the timed repeats are the steady state. ``-X importtime`` of ``harness list`` (``--importtime``) names the
modules that cost the most, i.e. which heavy dependency a plugin imports at import time.

    python benchmarks/bench_cli_startup.py [--repeats 5] [--importtime] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: issue 12, target 4: every everyday command answers within a second
TARGET_S = 1.0
COMMANDS: dict[str, list[str]] = {
    "import harness": ["-c", "import harness"],
    "harness --help": ["-m", "harness", "--help"],
    "harness list": ["-m", "harness", "list"],
    "harness plan --all": ["-m", "harness", "plan", "--all"],
    "harness data status": ["-m", "harness", "data", "status"],
    "harness weights status": ["-m", "harness", "weights", "status"],
}


#: commands whose first run in a home asks the model libraries (then remembered)
FIRST_RUN = ("harness plan --all", "harness weights status")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wall(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one fresh process."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t0, _children_cpu() - c0, proc.returncode


def heaviest_imports(env: dict[str, str], top: int = 12) -> list[tuple[int, str]]:
    """Top-level packages by cumulative import time (µs) in ``harness list``."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", "list"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    per_pkg: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cum, name = (p.strip() for p in line[len("import time:"):].split("|"))
        if not cum.isdigit():
            continue
        if line.split("|")[2].startswith("  "):  # nested import: counted in its parent's cumulative time
            continue
        pkg = name.split(".")[0]
        per_pkg[pkg] = per_pkg.get(pkg, 0) + int(cum)
    return sorted(((us, pkg) for pkg, us in per_pkg.items()), reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--data-root", type=Path, default=None, help="HARNESS_DATA_ROOT (default: ../shared/data, else env)")
    a = ap.parse_args()
    shared = ROOT.parent / "shared" / "data"
    data_root = a.data_root or (shared if shared.is_dir() else None)
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "HARNESS_HOME": str(Path(d) / "home"), "HARNESS_DB": str(Path(d) / "db.duckdb"),
               "HARNESS_REGISTRY": str(ROOT / "registry.yaml"), "HF_HUB_OFFLINE": "1"}
        if data_root is not None:
            env["HARNESS_DATA_ROOT"] = str(data_root)
        times: dict[str, list[float]] = {label: [] for label in COMMANDS}
        cpu: dict[str, list[float]] = {label: [] for label in COMMANDS}
        codes: dict[str, int] = {}
        load0 = os.getloadavg()[0]
        first = {label: wall(COMMANDS[label], env) for label in FIRST_RUN}  # the new home: libraries asked once
        for _ in range(a.repeats):
            for label, args in COMMANDS.items():
                t, c, rc = wall(args, env)
                times[label].append(t)
                cpu[label].append(c)
                codes[label] = max(codes.get(label, 0), rc)
        load1 = os.getloadavg()[0]
        print(f"median of {a.repeats} fresh processes; registry {env['HARNESS_REGISTRY']}; "
              f"HARNESS_DATA_ROOT {env.get('HARNESS_DATA_ROOT', 'unset')}")
        print(f"load average {load0:.2f} → {load1:.2f} on {os.cpu_count()} CPUs (other processes slow every row alike)")
        med = {label: statistics.median(ts) for label, ts in times.items()}
        med_cpu = {label: statistics.median(cs) for label, cs in cpu.items()}
        base, base_cpu = med["import harness"], med_cpu["import harness"]
        print(f"{'command':34s} {'wall s':>8s} {'× import harness':>17s} {'CPU s':>7s} {'× (CPU)':>8s}  {'≤ 1 s':>6s}  exit")
        rows = [(label, med[label], med_cpu[label], codes[label]) for label in COMMANDS]
        rows += [(f"{label} (new home)", t, c, rc) for label, (t, c, rc) in first.items()]
        for label, t, c, rc in rows:
            verdict = "" if label == "import harness" else ("pass" if t <= TARGET_S else "FAIL")
            print(f"{label:34s} {t:8.2f} {t / base:17.1f} {c:7.2f} {c / base_cpu:8.1f}  {verdict:>6s}  {rc}")
        if a.importtime:
            print("\nheaviest top-level imports of `harness list` (cumulative ms):")
            for us, pkg in heaviest_imports(env):
                print(f"  {pkg:24s} {us / 1000:8.0f}")


if __name__ == "__main__":
    main()
