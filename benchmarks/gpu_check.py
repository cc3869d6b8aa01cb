"""The GPU path measured in one unattended command: one table on stdout, the same rows as JSON.

Checks, in order (each row says what it measured and on what):

0. the device: whether CUDA is usable, which GPU(s), driver/runtime, memory — printed first, so a
   machine without a working GPU says so before anything is timed;
1. extraction: images/s of the harness's tapped forward (``Backbone.tokens``: hooks at every layer,
   stop after the deepest) on pre-decoded batches, ViT-B/16 and SE-ResNeXt-50 (random init: speed does
   not depend on the weights), fp32 and bf16 autocast, batch 256;
2. ridge: ``harness.kit.ridge.RidgeCV`` (efficient LOO, 10 alphas) 3 000 × 768 → 40 000 voxels with the
   ``torch_cuda`` backend vs the CPU backend, and the ratio;
3. FactorTopy: 3 000 stimuli × 40 000 voxels × 12 layers (ViT-B shape) training steps/s through the head's
   own step (``benchmarks/bench_factortopy.py``), and the projected time to convergence: the head's
   default schedule (``max_epochs`` passes, the upper bound early stopping cuts short) and the paper's
   12 000 steps (paper: 30 min per model on an RTX 4090; target ≤ 5 min on one H100/H200-class GPU);
4. ``harness run --all --device cuda`` wall time (fresh temporary home and database: cold).

It installs nothing and downloads nothing (HF_HUB_OFFLINE is set for the child run). ``--tiny`` shrinks
every size (and replaces step 4 by ``harness plan --all``) so a CPU test can run the whole script in
seconds and it cannot rot: ``python benchmarks/gpu_check.py --device cpu --tiny``.

    python benchmarks/gpu_check.py [--device auto|cuda|cpu] [--tiny] [--json gpu_check.json] [--skip run_all]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHECKS = ("extraction", "ridge", "factortopy", "run_all")
#: check → sizes; "tiny" keeps every code path at CPU-test scale
SIZES: dict[str, dict[str, Any]] = {
    "full": {"models": {"vit_b16": "vit_base_patch16_224", "seresnext50": "seresnext50_32x4d"}, "batch": 256,
             "iters": 3, "ridge": (3000, 768, 40000), "ft": {"stimuli": 3000, "voxels": 40000, "layers": 12,
                                                              "channels": 768, "grid": 14, "steps": 5}},
    "tiny": {"models": {"vit_tiny": "vit_tiny_patch16_224", "resnet18": "resnet18"}, "batch": 2, "iters": 1,
             "ridge": (60, 16, 50), "ft": {"stimuli": 64, "voxels": 40, "layers": 3, "channels": 16, "grid": 4,
                                           "steps": 2}},
}


class Table:
    """Rows of (check, setting, value, unit, note), printed as they come and dumped as JSON at the end."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, check: str, setting: str, value: float | str | None, unit: str = "", note: str = "") -> None:
        row = {"check": check, "setting": setting, "value": value, "unit": unit, "note": note}
        self.rows.append(row)
        v = f"{value:,.2f}" if isinstance(value, float) else ("" if value is None else str(value))
        print(f"{check:11s} {setting:48s} {v:>12s} {unit:9s} {note}", flush=True)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, iters: int) -> float:
    """Seconds per call: one warm-up call, then the mean of ``iters`` calls between device syncs."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def device_check(want: str, table: Table) -> str:
    """Which device to use, with what was found; exits 2 when CUDA is asked for and is not usable."""
    import torch

    found = f"torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}"
    ok = torch.cuda.is_available()
    if ok:
        n = torch.cuda.device_count()
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        found += (f"; {n} GPU(s): {props.name} (sm_{props.major}{props.minor}), {total / 2**30:.0f} GiB "
                  f"({free / 2**30:.0f} free), bf16 {torch.cuda.is_bf16_supported()}")
    else:
        found += "; no usable CUDA device (torch.cuda.is_available() is False)"
    device = ("cuda" if ok else "cpu") if want == "auto" else want
    table.add("device", "found", device, "", found)
    table.add("device", "host", f"{os.cpu_count()} CPUs", "", f"{platform.processor() or platform.machine()}, "
              f"torch threads {torch.get_num_threads()}")
    if device.startswith("cuda") and not ok:
        print(f"gpu_check: --device {want} but CUDA is not usable here ({found})", file=sys.stderr)
        raise SystemExit(2)
    return device


def check_extraction(device: str, size: dict[str, Any], table: Table, tmp: Path) -> None:
    import torch
    import yaml

    from harness.factory import Factory
    from harness.settings import load_settings

    rows = {label: {"plugin": "timm", "random_init": True, "args": {"model": model}}
            for label, model in size["models"].items()}
    path = tmp / "registry.yaml"
    path.write_text(yaml.safe_dump({"plugin_entries": False, "backbones": rows}))
    f = Factory.open(load_settings().with_overrides(registry=path), device=device)
    b = size["batch"]
    for label in rows:
        bb = f.backbone(label)
        bb.to(device)
        crop = bb.preprocess.crop
        x = torch.randn(b, 3, crop, crop, device=device)
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and device.startswith("cuda") and not torch.cuda.is_bf16_supported():
                table.add("extraction", f"{label} {precision} batch {b}", None, "img/s", "bf16 not supported here")
                continue

            def run(p: str = precision) -> None:
                with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                            enabled=p == "bf16"):
                    bb.tokens(x)

            s = timed(run, device, size["iters"])
            table.add("extraction", f"{label} {precision} batch {b} ({crop} px)", b / s, "img/s",
                      f"{len(bb.layers)} tapped layers, pre-decoded input")
        f.release(label)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def check_ridge(device: str, size: dict[str, Any], table: Table) -> None:
    from harness.kit.ridge import RidgeCV, get_backend

    n, p, t = size["ridge"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p), dtype=np.float32)
    y = (x @ rng.standard_normal((p, t), dtype=np.float32)) * 0.1 + rng.standard_normal((n, t), dtype=np.float32)
    alphas = np.logspace(-1, 8, 10)
    times = {}
    # the CPU leg is named, not "auto": with a GPU visible "auto" is torch_cuda itself
    backends = ["numpy"] + (["torch_cuda"] if device.startswith("cuda") else [])
    for name in backends:
        be = get_backend(name)
        RidgeCV(alphas, backend=be).fit(x[:50, :20], y[:50, :30])  # warm-up
        t0 = time.perf_counter()
        RidgeCV(alphas, cv="loo", backend=be, dtype="float32").fit(x, y)
        be.synchronize()
        times[name] = time.perf_counter() - t0
        table.add("ridge", f"LOO {n}×{p}→{t} [{be.name} on {be.device}]", times[name], "s")
    if "torch_cuda" in times:
        table.add("ridge", "CPU / torch_cuda", times["numpy"] / times["torch_cuda"], "×")


def check_factortopy(device: str, size: dict[str, Any], table: Table) -> None:
    import torch
    from bench_factortopy import model, time_steps, token_source

    from harness.kit.training import TrainArgs, steps_per_epoch

    ft = size["ft"]
    cuda = device.startswith("cuda")
    n_stim = ft["stimuli"] if cuda else min(ft["stimuli"], 96)  # a step reads one batch whatever the bank
    src = token_source(n_stim, ft["layers"], ft["channels"], ft["grid"], 8, device)
    chunk = 8192 if cuda else 2048
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    s, _cpu = time_steps(src, model(src, ft["voxels"], device), ft["voxels"], chunk, ft["steps"], 32, device)
    peak = f", peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""
    table.add("factortopy", f"{ft['stimuli']} stim × {ft['voxels']} vox × {ft['layers']} layers", 1 / s, "steps/s",
              f"batch 32, voxel chunk {chunk}{peak}")
    a = TrainArgs()
    per_epoch = steps_per_epoch(round(ft["stimuli"] * (1 - a.val_fraction)), a.batch_size)
    default_steps = round(a.max_epochs * per_epoch)
    table.add("factortopy", f"projected: default schedule (≤ {a.max_epochs:g} epochs × {per_epoch} steps)",
              default_steps * s / 60, "min", "training steps only; an upper bound: early stopping ends sooner")
    table.add("factortopy", "projected: paper schedule (12 000 steps)", 12000 * s / 60, "min",
              "paper: 30 min on an RTX 4090; target ≤ 5 min")


def check_run_all(device: str, tiny: bool, table: Table, tmp: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_HOME": str(tmp / "home")}
    cmd = [sys.executable, "-m", "harness", "--db", str(tmp / "check.duckdb"), "--home", str(tmp / "home")]
    cmd += ["plan", "--all"] if tiny else ["run", "--all", "--device", device]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    table.add("run_all", " ".join(cmd[3:]).replace(str(tmp), "$TMP"), wall, "s",
              f"exit {proc.returncode}: {tail[0][:80]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test of the script itself)")
    ap.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--skip", nargs="*", default=[], choices=CHECKS)
    a = ap.parse_args(argv)
    table = Table()
    print(f"{'check':11s} {'setting':48s} {'value':>12s} {'unit':9s} note")
    device = device_check(a.device, table)
    size = SIZES["tiny" if a.tiny else "full"]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as d:
        tmp = Path(d)
        os.environ.setdefault("HARNESS_HOME", str(tmp / "home"))
        steps: dict[str, Callable[[], None]] = {
            "extraction": lambda: check_extraction(device, size, table, tmp),
            "ridge": lambda: check_ridge(device, size, table),
            "factortopy": lambda: check_factortopy(device, size, table),
            "run_all": lambda: check_run_all(device, a.tiny, table, tmp),
        }
        for name, fn in steps.items():
            if name in a.skip:
                table.add(name, "skipped (--skip)", None)
                continue
            try:
                fn()
            except Exception as exc:  # one broken check must not hide the others' rows
                failed += 1
                table.add(name, "FAILED", None, "", f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}")
    a.json.write_text(json.dumps({"device": device, "tiny": a.tiny, "rows": table.rows}, indent=1))
    print(f"wrote {a.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
