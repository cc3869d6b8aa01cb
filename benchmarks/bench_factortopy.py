"""FactorTopy training throughput on cached tokens: 3 000 stimuli × 40 000 voxels × 12 layers (ViT-B shape).

Runs the head's own code path (``FactorTopyNet`` + ``harness.kit.training.train_step``
+ AdamW) on synthetic float16 tokens of ViT-B shape (768 × 14 × 14 local, 768 global),
pooled once to the head's default grid (8 × 8; ``--head-grid 14`` keeps them whole), and
times training steps (batch 32) on the device:

1. baseline vs chunked at a reduced voxel count that fits unchunked: the unchunked step
   (one readout over all voxels) against the chunked one (``--chunk`` voxels per
   readout, gradients pushed through the shared alignment once) — same numbers, the
   ratio is the cost of bounding memory;
2. the full size, chunked: steps/s, and the projected training time of one epoch, of
   the default head schedule (``max_steps`` 600) and of the paper-sized schedule
   (the ``factortopy_paper`` entry, at most 12 000 steps).

On CPU only ``--bank`` distinct stimuli are kept in memory (a step reads one batch
whatever the bank size, so steps/s do not depend on it); on CUDA all 3 000 stimuli
are held on the device (10.8 GB in float16), as the head does when they fit.

    python benchmarks/bench_factortopy.py [--device auto] [--steps 3] [--voxels 40000]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from harness_factortopy.model import FactorTopyNet

    from harness.kit.token_source import TokenSource


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def token_source(n_stim: int, n_layers: int, c: int, g: int, head_grid: int, device: str,
                 seed: int = 0) -> TokenSource:
    """Random tokens pooled to the head's grid once, as the head's preload does (``TokenSource._read_local``)."""
    import torch.nn.functional as F

    from harness.kit.token_source import TokenSource

    gen = torch.Generator(device=device).manual_seed(seed)
    layers = [f"block{i}" for i in range(n_layers)]
    gp = min(g, head_grid)
    # generated chunk by chunk straight into float16 on the device: 3 000 ViT-B stimuli are 10.8 GB at 14 × 14
    local = []
    for _ in layers:
        t = torch.empty(n_stim, c, gp, gp, dtype=torch.float16, device=device)
        for s in range(0, n_stim, 256):
            x = torch.randn(min(256, n_stim - s), c, g, g, generator=gen, device=device)
            t[s : s + 256] = (F.adaptive_avg_pool2d(x, gp) if gp < g else x).to(torch.float16)
        local.append(t)
    glob = [torch.randn(n_stim, c, generator=gen, device=device).to(torch.float16) for _ in layers]
    return TokenSource.from_tensors(layers, local, glob, device, stats_idx=np.arange(min(n_stim, 256)))


def model(src: TokenSource, n_vox: int, device: str) -> FactorTopyNet:
    """The head's network with topological selectors over random voxel coordinates."""
    from harness_factortopy.model import CoordSelectors, FactorTopyNet, selector_outputs
    from harness_factortopy.positional import sinusoidal_encoding

    pe = torch.from_numpy(sinusoidal_encoding(np.random.default_rng(1).uniform(0, 100, (n_vox, 3))))
    outs, init = selector_outputs(len(src.layers), "learned", "learned", "learned", 1)
    torch.manual_seed(0)
    return FactorTopyNet(src.shapes(), n_vox, CoordSelectors(pe, outs, 128, init)).to(device)


def time_steps(src: TokenSource, net: FactorTopyNet, n_vox: int, chunk: int, steps: int, batch: int,
               device: str) -> tuple[float, float]:
    """Seconds per training step (after one warm-up step) and process CPU seconds per step."""
    from harness.kit.training import train_step

    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    rng = np.random.default_rng(0)
    n_stim = src.n_rows
    y = torch.randn(n_stim, n_vox, device=device)

    def one() -> None:
        b = np.sort(rng.choice(n_stim, batch, replace=False))
        train_step(net, src.batch(b), y[torch.as_tensor(b, device=device)], chunk, 0.1, 0.05)
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()
    sync(device)
    w, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        one()
    sync(device)
    return (time.perf_counter() - w) / steps, (time.process_time() - c) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--stimuli", type=int, default=3000)
    ap.add_argument("--voxels", type=int, default=40000)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--channels", type=int, default=768)
    ap.add_argument("--grid", type=int, default=14, help="token grid of the backbone (ViT-B/16 at 224 px: 14)")
    ap.add_argument("--head-grid", type=int, default=8, help="the head's grid arg: maps pooled to at most this")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=None, help="voxels per readout chunk (default 2048 CPU, 8192 CUDA)")
    ap.add_argument("--bank", type=int, default=96, help="CPU only: distinct stimuli kept in memory")
    ap.add_argument("--baseline-voxels", type=int, default=None, help="voxel count of the unchunked comparison")
    args = ap.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = device.startswith("cuda")
    chunk = args.chunk or (8192 if cuda else 2048)
    n_stim = args.stimuli if cuda else min(args.stimuli, args.bank)
    base_vox = args.baseline_voxels or (args.voxels if cuda else 4 * chunk)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}")
    print(f"tokens: {n_stim} stimuli held ({args.stimuli} nominal) × {args.layers} layers × "
          f"{args.channels}×{args.grid}×{args.grid} float16, pooled to {min(args.grid, args.head_grid)}×"
          f"{min(args.grid, args.head_grid)} (head grid); batch {args.batch}; bottleneck 128")

    src = token_source(n_stim, args.layers, args.channels, args.grid, args.head_grid, device)

    # 1. unchunked baseline vs chunked, same voxel count
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t_base, c_base = time_steps(src, model(src, base_vox, device), base_vox, base_vox, args.steps, args.batch, device)
    peak_base = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t_chunk, c_chunk = time_steps(src, model(src, base_vox, device), base_vox, chunk, args.steps, args.batch, device)
    peak_chunk = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    print(f"\n[{base_vox} voxels] unchunked: {t_base:.3f} s/step (CPU {c_base:.2f} s)"
          + (f", peak {peak_base:.2f} GiB" if cuda else ""))
    print(f"[{base_vox} voxels] chunked ({chunk}): {t_chunk:.3f} s/step (CPU {c_chunk:.2f} s)"
          + (f", peak {peak_chunk:.2f} GiB" if cuda else "")
          + f"; chunked/unchunked time ratio {t_chunk / t_base:.2f}")

    # 2. the full size, chunked
    if args.voxels != base_vox or not cuda:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t_full, c_full = time_steps(src, model(src, args.voxels, device), args.voxels, chunk, args.steps, args.batch, device)
        peak_full = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    else:
        t_full, c_full, peak_full = t_chunk, c_chunk, peak_chunk
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    per_epoch = int(np.ceil(args.stimuli * 0.85 / args.batch))  # the head trains on 85 % (15 % validation)
    print(f"\n[{args.voxels} voxels] chunked ({chunk}): {1 / t_full:.3f} steps/s ({t_full:.3f} s/step, "
          f"CPU {c_full:.2f} s/step)" + (f", peak GPU memory {peak_full:.2f} GiB" if cuda else "")
          + f"; process max RSS {rss:.2f} GiB")
    for label, steps in (("one epoch", per_epoch), ("head default (max_steps 600)", 600),
                         ("factortopy_paper (max_steps 12000)", 12000)):
        print(f"  projected {label}: {steps} steps → {steps * t_full / 60:.1f} min (training steps only)")


if __name__ == "__main__":
    main()
