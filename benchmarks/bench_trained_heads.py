"""Trained token heads on the default synthetic brain: time, steps, score and the hierarchy finding.

Builds the ``synthetic`` dataset of the project's ``registry.yaml`` (or ``--dataset``) on
its generating backbone, extracts the tokens once (not timed), then fits each head with
the arguments of its registry entry (``--set key=value`` overrides them for every head)
and prints per head: training seconds and their share of the total, steps and epochs,
median test r, and, for heads with a layer selector, the hierarchy slope with its
bootstrap 95 % CI against the planted slope. Times of one run are comparable with each
other (ratios); absolute seconds depend on the machine's load.

The paper's finding (Yang, Gee & Shi 2024, Table 3) is visible when the FactorTopy slope
is within ±25 % of the planted one with a CI excluding 0 and the median r ordering is
FactorTopy ≥ no-layer ablation ≥ classToken.

    python benchmarks/bench_trained_heads.py [--heads factortopy classtoken ...] [--profile DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_HEADS = ["factortopy", "factortopy_no_layer", "factortopy_no_space", "factortopy_no_scale",
                 "factortopy_no_topology", "factortopy_space3", "classtoken", "patchtoken", "gnet"]


def _value(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--heads", nargs="+", default=DEFAULT_HEADS)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="head argument overrides (every head)")
    p.add_argument("--dataset-set", nargs="*", default=[], metavar="KEY=VALUE", help="dataset argument overrides")
    p.add_argument("--subject", default=None, help="default: the dataset's first subject")
    p.add_argument("--profile", type=Path, default=None, help="write a cProfile .pstats per head here and print its top")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    os.environ.setdefault("HARNESS_HOME", tempfile.mkdtemp(prefix="bench_heads_"))
    import torch
    import yaml

    if a.threads:
        torch.set_num_threads(a.threads)
    from harness.contracts import HeadInput
    from harness_metrics.hierarchy import hierarchy_slope, unit_levels
    from harness_metrics.uncertainty import bootstrap_lines, percentile_ci

    from harness.scoring import pearson_columns
    from tests.helpers import make_factory

    top = yaml.safe_load((ROOT / "registry.yaml").read_text())
    own = {}
    for sub in ("harness_factortopy", "harness_heads"):
        own.update(yaml.safe_load((ROOT / "plugins" / sub / "registry.yaml").read_text())["heads"])
    heads = {**own, **top["heads"]}
    ds_entry = dict(top["datasets"][a.dataset])
    ds_entry["args"] = {**ds_entry.get("args", {}), **{k: _value(v) for k, v in (s.split("=", 1) for s in a.dataset_set)}}
    bb = ds_entry["args"].get("backbone", "mobilenet_v2_random")
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in a.set)}
    reg = {"backbones": {bb: top["backbones"][bb]}, "datasets": {a.dataset: ds_entry}, "metrics": {},
           "heads": {h: {**heads[h], "args": {**heads[h].get("args", {}), **overrides}} for h in a.heads}}
    f = make_factory(reg, Path(tempfile.mkdtemp()))
    ds = f.dataset(a.dataset)
    stim = ds.stimuli()
    t0 = time.perf_counter()
    tokens = f.tokens_for(bb, stim)
    subject = a.subject or ds.subjects()[0]
    targets = ds.targets(subject)
    truth = ds.ground_truth(subject)  # type: ignore[attr-defined]
    print(f"{a.dataset} on {bb}: {len(stim)} stimuli, {len(truth.rois)} voxels, {len(tokens.layers)} layers, "
          f"torch threads {torch.get_num_threads()}; data + tokens {time.perf_counter() - t0:.1f} s (not in the ratios)")
    levels = unit_levels(list(truth.rois), truth.roi_level)
    planted = hierarchy_slope(truth.layer_weights, levels).slope
    print(f"planted hierarchy slope {planted:.3f}; noise ceiling median r {np.median(truth.noise_ceiling_r):.3f}")
    rows = []
    for name in a.heads:
        head = f.build(f.registry.get(name, "head"))
        prof = cProfile.Profile() if a.profile else None
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        out = head.fit_predict(HeadInput(targets=targets, stimuli=stim, tokens=tokens, seed=0))  # type: ignore[attr-defined]
        if prof:
            prof.disable()
        dt = time.perf_counter() - t0
        r = float(np.median(pearson_columns(out.predictions, targets.responses[targets.test_idx])))
        slope = ci = None
        if out.layer_weights is not None and np.ptp(out.layer_weights) > 1e-6:
            fit = hierarchy_slope(out.layer_weights, levels)
            slope = fit.slope
            x = (levels - np.nanmin(levels)) / np.ptp(levels[np.isfinite(levels)])
            from harness_metrics.hierarchy import centre_of_mass

            reps = bootstrap_lines(np.random.default_rng(0), x, centre_of_mass(out.layer_weights), 1000)
            ci = percentile_ci(reps[0], 0.95)
        rows.append((name, dt, out.info.get("steps"), out.info.get("epochs"), r, slope, ci))
        if prof and a.profile:
            a.profile.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(a.profile / f"{name}.pstats")
            print(f"--- {name}: top 12 by cumulative time")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(12)
    total = sum(r[1] for r in rows)
    print(f"\n{'head':26s} {'seconds':>8s} {'share':>6s} {'steps':>6s} {'epochs':>6s} {'med r':>6s}  hierarchy slope [95% CI]")
    for name, dt, steps, epochs, r, slope, ci in rows:
        sl = "" if slope is None else f"{slope:6.3f} [{ci[0]:.3f}, {ci[1]:.3f}] ({slope / planted:.0%} of planted)"
        print(f"{name:26s} {dt:8.1f} {dt / total:6.1%} {steps or '':>6} {epochs or '':>6} {r:6.3f}  {sl}")
    by = {n: r for n, _, _, _, r, _, _ in rows}
    if {"factortopy", "factortopy_no_layer", "classtoken"} <= by.keys():
        ok = by["factortopy"] >= by["factortopy_no_layer"] >= by["classtoken"]
        print(f"ordering FactorTopy ≥ no-layer ≥ classToken: {'yes' if ok else 'NO'} "
              f"({by['factortopy']:.3f} / {by['factortopy_no_layer']:.3f} / {by['classtoken']:.3f})")


if __name__ == "__main__":
    main()
