"""Synthetic-brain generation cost versus voxel count, from tiny to NSD-like (40 000 voxels).

Tokens of one backbone on N procedural stimuli are extracted once (not timed); then
``generate_subject`` is timed at several voxel counts and each time is printed as a ratio
to the smallest size, so the per-voxel scaling is measured in one run on one machine.

    python benchmarks/bench_synthetic_brain.py [--stimuli 240] [--backbone mobilenet_v2_random]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stimuli", type=int, default=240)
    p.add_argument("--backbone", default="mobilenet_v2_random")
    p.add_argument("--voxels", type=int, nargs="+", default=[400, 4000, 40000])
    a = p.parse_args()
    os.environ.setdefault("HARNESS_HOME", tempfile.mkdtemp())
    import yaml
    from harness_datasets.synthetic import procedural_images
    from harness_datasets.synthetic_brain import BrainDesign, generate_subject

    from harness.contracts import Stimuli
    from tests.helpers import make_factory

    top = yaml.safe_load((Path(__file__).resolve().parents[1] / "registry.yaml").read_text())
    f = make_factory({"backbones": {a.backbone: top["backbones"][a.backbone]}}, Path(tempfile.mkdtemp()))
    stim = Stimuli.from_array(procedural_images(a.stimuli, 64, 0))
    t0 = time.perf_counter()
    store = f.tokens_for(a.backbone, stim)
    print(f"extraction ({a.stimuli} stimuli, {a.backbone}, not part of the ratios): {time.perf_counter() - t0:.1f} s")
    rois = ("V1", "V2", "V3", "hV4", "LO", "IT")
    base = None
    for v in a.voxels:
        d = BrainDesign(rois=rois, voxels_per_roi=max(1, v // len(rois)), layer_mix_sd=0.7, n_repeats=3, snr=0.5)
        t0 = time.perf_counter()
        data = generate_subject(d, store, a.backbone, 0)
        dt = time.perf_counter() - t0
        base = base or dt / data.repeats.shape[2]
        per = dt / data.repeats.shape[2]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"{data.repeats.shape[2]:6d} voxels × {a.stimuli} stimuli × 3 repeats: {dt:6.2f} s "
              f"(per-voxel cost {per / base:.2f}× the {a.voxels[0]}-voxel run; peak RSS {rss:.2f} GB)")


if __name__ == "__main__":
    main()
