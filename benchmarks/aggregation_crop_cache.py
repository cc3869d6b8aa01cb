"""Stage aggregation, mode mask_only: a cached crop bank vs recomputing the frozen backbone every step.

Both arms train the same masks (stage, channel and channel×location) for the same epochs on the
same images (92, the Algonauts 92-set size) and targets:

* live: ``n_crops: null`` — every step crops the images afresh and runs the frozen network;
* bank: ``n_crops: K`` — K crops per image go through the network once (cached by content),
  then every epoch reads one cached crop per image.

It also times the bank arm's training with 1 vs the default number of intra-op threads (the
bank source pins 1). Timings are wall and process CPU seconds measured here, in this run;
the machine's load average is printed because other jobs share the cores.

    python benchmarks/aggregation_crop_cache.py [--epochs 3] [--n-crops 4] [--images 92]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall s, process CPU s)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-crops", type=int, default=4)
    ap.add_argument("--images", type=int, default=92)
    ap.add_argument("--subjects", type=int, default=14)
    args = ap.parse_args()

    from harness_aggregation.crops import stage_bank
    from harness_aggregation.sources import BankSource, LiveSource
    from harness_aggregation.training import TrainConfig, fit
    from harness_datasets.synthetic import procedural_images

    from harness.cache import TokenCache
    from harness.contracts import BuildContext, Stimuli
    from harness.extract import view_tokens
    from harness.plugins import default_catalog
    from harness.settings import load_settings
    from harness.specs import RegistryEntry

    home = Path(tempfile.mkdtemp(prefix="aggbench"))
    settings = load_settings().with_overrides(home=home)
    entry = RegistryEntry(name="mobilenet_v2_random", kind="backbone", plugin="torchvision", args={"arch": "mobilenet_v2"},
                          random_init=True)
    cls = default_catalog().get("backbone", "torchvision")
    bb = cls(cls.spec.args(**entry.args), BuildContext(entry=entry, settings=settings))
    stim = Stimuli.from_array(procedural_images(args.images, 175, 0))
    rng = np.random.default_rng(0)
    a = rng.uniform(0.3, 1.3, (args.subjects, args.images, args.images))
    rdms = (a + a.transpose(0, 2, 1)) / 2
    for s in range(args.subjects):
        np.fill_diagonal(rdms[s], 0.0)
    cfg = TrainConfig(masks=("stage", "channel", "location"), pool=1, normalize="none", epochs=args.epochs)
    stages = list(bb.layers)
    print(f"mobilenet_v2 (random init) × {args.images} images, {args.subjects} subjects, {args.epochs} epochs, "
          f"batch 40; torch threads {torch.get_num_threads()}; load avg {os.getloadavg()[0]:.1f}")

    live_src, w_live_init, c_live_init = timed(lambda: LiveSource(bb, stim, stages, True, 7, 0.875, "cpu", finetune=False))
    _, w_live, c_live = timed(lambda: fit(live_src, rdms, cfg, seed=0))
    def extract(view, batch_size, progress):
        return view_tokens(bb, stim, view, TokenCache(settings.cache_dir), batch_size=batch_size, progress=progress)

    bank, w_bank, c_bank = timed(lambda: stage_bank(extract, len(stim), n_crops=args.n_crops, crop_fraction=0.875,
                                                    grid=7, seed=0))
    src, w_load, c_load = timed(lambda: BankSource(bank, stages, True, "cpu"))
    _, w_fit1, c_fit1 = timed(lambda: fit(src, rdms, cfg, seed=0))
    BankSource.train_threads = None  # the process default, for comparison
    _, w_fitn, c_fitn = timed(lambda: fit(src, rdms, cfg, seed=0))
    BankSource.train_threads = 1

    per_epoch_live = w_live / args.epochs
    per_epoch_bank = w_fit1 / args.epochs
    build = w_bank + w_load
    print(f"{'arm':<44}{'wall s':>9}{'cpu s':>9}")
    print(f"{'live: image decode + resize (once)':<44}{w_live_init:>9.2f}{c_live_init:>9.2f}")
    print(f"{f'live: {args.epochs} epochs (network every step)':<44}{w_live:>9.2f}{c_live:>9.2f}")
    print(f"{f'bank: build {args.n_crops} crops/image (network once)':<44}{w_bank:>9.2f}{c_bank:>9.2f}")
    print(f"{'bank: load to tensors':<44}{w_load:>9.2f}{c_load:>9.2f}")
    print(f"{f'bank: {args.epochs} epochs, 1 intra-op thread':<44}{w_fit1:>9.2f}{c_fit1:>9.2f}")
    print(f"{f'bank: {args.epochs} epochs, {torch.get_num_threads()} intra-op threads':<44}{w_fitn:>9.2f}{c_fitn:>9.2f}")
    print(f"per epoch: live {per_epoch_live:.2f} s, bank {per_epoch_bank:.3f} s → {per_epoch_live / per_epoch_bank:.0f}× "
          f"per epoch; bank build = {build / per_epoch_live:.1f} live epochs")
    for e in sorted({args.epochs, 10, 20, 40}):
        live_total = w_live_init + e * per_epoch_live
        bank_total = build + e * per_epoch_bank
        print(f"  {e:>3} epochs: live {live_total:8.1f} s  bank {bank_total:7.1f} s  ratio {live_total / bank_total:5.1f}×"
              + ("  (measured)" if e == args.epochs else "  (from the measured per-epoch costs)"))
    print(f"bank training, 1 thread vs {torch.get_num_threads()}: {w_fitn / w_fit1:.1f}× faster with 1 (wall)")


if __name__ == "__main__":
    main()
