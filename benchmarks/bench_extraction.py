"""Extraction speed and memory for the local backbone families (timm, torchvision, CIFAR ResNets).

speed    : images/s of harness extraction against a bare forward pass, same net, same batch size.
           harness = ``ensure_tokens`` into an empty token cache — the path ``harness run`` takes:
           stimulus batches, forward with taps at every layer (stopping after the deepest), grid
           pooling, float16 writes. Two states of the decoded-stimulus cache (``<cache>/decoded``):
             warm = the stimulus set is already decoded for this recipe (the steady state of
                    ``run --all``, where every backbone after the first with a recipe reads uint8
                    pixels from the memmap and only normalises them);
             cold = nothing cached: JPEG decode + resize + crop in one background thread, written
                    to the decoded cache as it goes (what the first backbone of a recipe pays).
           bare    = ``net(x)`` on the same, already preprocessed batches under ``inference_mode``
           (the whole net, classifier included; nothing stored).
           overhead = harness time / bare time - 1 (target < 15 %, warm). fmt: the family's default layout.
           CPU ovh = the same ratio of process CPU seconds (all threads): on a machine shared with other
           processes wall time mostly measures their load, CPU time far less.
           taps    = ``tokens()`` alone on the preprocessed batches (hooks at every layer, stop after the
           deepest), decode = JPEG decode + resize + crop + normalise alone: where the overhead goes.
layout   : bare forward with channels_last vs contiguous NCHW, same weights (the families'
           ``channels_last`` defaults come from this column).
bf16     : tokens under CPU bf16 autocast vs fp32: speed ratio and the lowest Pearson r over layers
           (a family may default to bf16 only if faster AND r ≥ 0.999).
memory   : peak memory of extracting N images with a ViT-B/16 (random init), each N in a fresh
           process; images are generated on the fly so the input set itself takes no memory.
           RssAnon = the process's own memory (tensors, arrays); RssFile = file pages mapped by the
           process (the memmapped cache being written: kernel page cache, reclaimable).

All timings are the best of ``--repeats`` interleaved runs in this process, on this machine's CPU.

Usage: python benchmarks/bench_extraction.py [--n 64] [--batch 32] [--repeats 2] [--only lite0,vit_b16]
                                             [--mem 250,1000] [--skip-speed] [--skip-mem] [--skip-extras]
(--skip-extras: only bare / warm / cold, without the taps, decode, layout and bf16 columns)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: row label → registry entry (random init where this machine has no weights for the family)
ROWS: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {"plugin": "timm", "args": {"model": "tf_efficientnet_lite0"}},
    "efficientnet_lite2": {"plugin": "timm", "args": {"model": "tf_efficientnet_lite2"}},
    "mobilenet_v2": {"plugin": "torchvision", "args": {"arch": "mobilenet_v2"}},
    "resnet20_cifar10": {"plugin": "cifar_resnet", "args": {"depth": 20}},
    "resnet56_cifar10": {"plugin": "cifar_resnet", "args": {"depth": 56}},
    "alexnet": {"plugin": "torchvision", "random_init": True, "args": {"arch": "alexnet"}},
    "resnet50": {"plugin": "torchvision", "random_init": True, "args": {"arch": "resnet50"}},
    "seresnext50_32x4d": {"plugin": "timm", "random_init": True, "args": {"model": "seresnext50_32x4d.racm_in1k"}},
    "vit_b16": {"plugin": "timm", "random_init": True, "args": {"model": "vit_base_patch16_224.augreg_in21k"}},
}


def _factory(rows: dict[str, dict[str, Any]], tmp: Path):
    import yaml

    from harness.factory import Factory
    from harness.settings import load_settings

    path = tmp / "registry.yaml"
    path.write_text(yaml.safe_dump({"plugin_entries": False, "backbones": rows}))
    return Factory.open(load_settings().with_overrides(registry=path))


def _stimuli(n: int):
    """The Algonauts 92 photos (cycled) when ../shared/data is here, else procedural 256 px images."""
    from harness.contracts import Stimuli

    root = Path(os.environ.get("HARNESS_DATA_ROOT", ROOT.parent / "shared" / "data")) / "cichy92" / "images"
    files = sorted(root.glob("*.jpg")) if root.is_dir() else []
    if files:
        paths = [files[i % len(files)] for i in range(n)]
        st = Stimuli.from_files(paths, ids=[f"{i:04d}" for i in range(n)])
        return st, f"{len(files)} Algonauts-92 photos, cycled"
    from harness_datasets.synthetic import procedural_images

    return Stimuli.from_array(procedural_images(n, 256, 0)), "procedural 256 px images"


def _best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def _speed_row(bb, stimuli, args: argparse.Namespace, tmp: Path) -> str:
    """One family: bare vs harness, channels_last vs NCHW, bf16 vs fp32 — timings interleaved, best of repeats."""
    from harness.cache import TokenCache
    from harness.extract import ensure_tokens
    from harness.kit.images import iter_batches

    net = bb.module()
    bb.weights_digest()  # hashed once per backbone; not a per-batch cost
    cl = bool(getattr(bb, "channels_last", False))
    fmt = torch.channels_last if cl else torch.contiguous_format
    other = torch.contiguous_format if cl else torch.channels_last
    batches = [b.contiguous(memory_format=fmt) for _, b in iter_batches(stimuli, bb.preprocess, args.batch)]
    b_other = [b.contiguous(memory_format=other) for b in batches]

    def bare(xs: list[torch.Tensor]) -> None:
        with torch.inference_mode():
            for b in xs:
                net(b)

    warm_root = Path(tempfile.mkdtemp(dir=tmp))
    ensure_tokens(bb, stimuli, TokenCache(warm_root), batch_size=args.batch)  # decodes once: the warm state

    cpu: dict[str, list[float]] = {"bare": [], "warm": [], "cold": []}

    def timed(kind: str, fn) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        cpu[kind].append(time.process_time() - c0)
        return wall

    def warm() -> float:
        shutil.rmtree(warm_root / "tokens")  # tokens miss, decoded stimuli hit
        return timed("warm", lambda: ensure_tokens(bb, stimuli, TokenCache(warm_root), batch_size=args.batch))

    def cold() -> float:
        with tempfile.TemporaryDirectory(dir=tmp) as c:  # both caches empty
            return timed("cold", lambda: ensure_tokens(bb, stimuli, TokenCache(Path(c)), batch_size=args.batch))

    def taps(enabled: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            for b in batches:
                bb.tokens(b)

    bare(batches[:1])  # warm-up (allocator, oneDNN primitives)
    t: dict[str, list[float]] = {k: [] for k in ("bare", "warm", "cold", "other", "fp32", "bf16", "decode")}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit every column alike
        t["bare"].append(timed("bare", lambda: bare(batches)))
        t["warm"].append(warm())
        t["cold"].append(cold())
        if args.skip_extras:
            continue
        net.to(memory_format=other)
        t["other"].append(_best(lambda: bare(b_other), 1))
        net.to(memory_format=fmt)
        t["fp32"].append(_best(lambda: taps(False), 1))
        t["bf16"].append(_best(lambda: taps(True), 1))
        t["decode"].append(_best(lambda: [b for _, b in iter_batches(stimuli, bb.preprocess, args.batch)], 1))
    shutil.rmtree(warm_root)
    best = {k: min(v) for k, v in t.items() if v}
    w = "random" if bb.ctx.random_init else "real"
    tb, tw, tc = best["bare"], best["warm"], best["cold"]
    cb, cw, cc = (min(cpu[k]) for k in ("bare", "warm", "cold"))
    row = (f"{bb.ctx.entry.name:20s} {w:7s} {'CL' if cl else 'NCHW':5s} {args.n / tb:10.1f} {args.n / tw:10.1f} "
           f"{tw / tb - 1:+9.1%} {args.n / tc:10.1f} {tc / tb - 1:+9.1%} {cw / cb - 1:+12.1%} {cc / cb - 1:+12.1%}")
    if args.skip_extras:
        return row
    cl_ratio = best["other"] / best["bare"] if cl else best["bare"] / best["other"]  # > 1: channels_last faster
    with torch.inference_mode():
        ref = {k: v.local.float() for k, v in bb.tokens(batches[0]).items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = {k: v.local.float() for k, v in bb.tokens(batches[0]).items()}
    rmin = min(float(np.corrcoef(ref[k].flatten().numpy(), low[k].flatten().numpy())[0, 1]) for k in ref)
    return (f"{row} {args.n / best['fp32']:10.1f} {args.n / best['decode']:11.1f} "
            f"{cl_ratio:7.2f}x {best['fp32'] / best['bf16']:8.2f}x {rmin:10.5f}")


def speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    rows = {k: v for k, v in ROWS.items() if not args.only or k in args.only}
    stimuli, what = _stimuli(args.n)
    print(f"# speed: {args.n} images ({what}), batch {args.batch}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats}, torch {torch.__version__}", flush=True)
    head = (f"{'family':20s} {'weights':7s} {'fmt':5s} {'bare img/s':>10s} {'warm img/s':>10s} {'warm ovh':>9s} "
            f"{'cold img/s':>10s} {'cold ovh':>9s} {'warm CPU ovh':>12s} {'cold CPU ovh':>12s}")
    if not args.skip_extras:
        head += f" {'taps img/s':>10s} {'decode img/s':>11s} {'CL/NCHW':>8s} {'bf16/fp32':>9s} {'bf16 min r':>10s}"
    print(head, flush=True)
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        f = _factory(rows, tmp)
        for label in rows:
            bb = f.backbone(label)
            reason = bb.unavailable_reason()
            print(f"{label:20s} skipped: {reason}" if reason else _speed_row(bb, stimuli, args, tmp), flush=True)
            f.release(label)


# ----------------------------------------------------------------------------- memory
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(val.split()[0])  # kB
    return out


def mem_child(n: int, batch: int, threads: int) -> None:
    """One extraction of ``n`` generated images with a random ViT-B/16; prints peak memory as JSON."""
    from harness_datasets.synthetic import procedural_images

    from harness.cache import TokenCache
    from harness.contracts import Stimuli
    from harness.extract import ensure_tokens

    torch.set_num_threads(threads)
    peak: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for k, v in _status().items():
                peak[k] = max(peak.get(k, 0), v)
            time.sleep(0.02)

    def load(i: int):
        from PIL import Image

        return Image.fromarray(procedural_images(1, 256, i)[0])

    stimuli = Stimuli(ids=tuple(f"{i:05d}" for i in range(n)), load=load,
                      digest=hashlib.sha256(f"procedural-256-{n}".encode()).hexdigest())
    with tempfile.TemporaryDirectory() as tmpd:
        f = _factory({"vit_b16": ROWS["vit_b16"]}, Path(tmpd))
        bb = f.backbone("vit_b16")
        bb.module()
        base = _status()
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        store = ensure_tokens(bb, stimuli, TokenCache(Path(tmpd) / "cache"), batch_size=batch)
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        disk = sum(p.stat().st_size for p in store.path.iterdir())
    print(json.dumps({"n": n, "wall_s": wall, "after_build_kb": base, "peak_kb": peak, "cache_mb": disk / 1e6,
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)


def memory(args: argparse.Namespace) -> None:
    print(f"# memory: ViT-B/16 (random init, 12 blocks, 224 px), batch {args.batch}, fp32, float16 cache, "
          f"each N in a fresh process", flush=True)
    print(f"{'N':>6s} {'img/s':>6s} {'peak RssAnon MB':>15s} {'peak RssFile MB':>15s} {'peak VmRSS MB':>13s} "
          f"{'ru_maxrss MB':>12s} {'cache MB':>9s}", flush=True)
    res = []
    for n in args.mem:
        out = subprocess.run([sys.executable, __file__, "--mem-child", str(n), "--batch", str(args.batch),
                              "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        res.append(r)
        p = r["peak_kb"]
        print(f"{n:6d} {n / r['wall_s']:6.1f} {p['RssAnon'] / 1024:15.0f} {p['RssFile'] / 1024:15.0f} "
              f"{p['VmRSS'] / 1024:13.0f} {r['ru_maxrss_kb'] / 1024:12.0f} {r['cache_mb']:9.0f}", flush=True)
    if len(res) >= 2:
        a, b = res[0], res[-1]
        print(f"peak RssAnon ratio N={b['n']} / N={a['n']}: {b['peak_kb']['RssAnon'] / a['peak_kb']['RssAnon']:.3f} "
              f"(images ratio {b['n'] / a['n']:.1f})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--only", type=lambda s: s.split(","), default=None)
    ap.add_argument("--mem", type=lambda s: [int(x) for x in s.split(",")], default=[250, 1000])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-mem", action="store_true")
    ap.add_argument("--skip-extras", action="store_true", help="only bare / warm / cold columns")
    ap.add_argument("--mem-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child is not None:
        mem_child(args.mem_child, args.batch, args.threads)
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_mem:
        memory(args)


if __name__ == "__main__":
    main()
