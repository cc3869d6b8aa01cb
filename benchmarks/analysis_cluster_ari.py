"""Channel clustering against planted truth: adjusted Rand index of FactorTopy's channel clusters vs SNR.

The synthetic brain of tests/test_analyses.py (a random 16-channel-wide CNN, 4 ROIs × 25 voxels, 400
procedural stimuli, ``roi_channel_share`` of the channel-weight variance planted per ROI) is generated at
each SNR and brain seed; FactorTopy (16-channel bottleneck, 600 steps, free selectors by default, channel
selector at ``--readout-lr`` × lr) is fitted and its channel selectors clustered into as many clusters as
ROIs with each kernel; the last line per SNR gives each kernel's mean and minimum ARI over the seeds.
The baseline clusters the voxels' sheet coordinates alone (Ward). Also printed: the response-map peak error of single voxels (token
cells, median per ROI), the truth behind `harness analyze channels`.

    python benchmarks/analysis_cluster_ari.py [--snr 1 3 10 30] [--seeds 3 4 5] [--readout-lr 10] [--share 0.8]
        [--layout mixed] [--topology free]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(snr: float, seed: int, share: float, layout: str, topology: str, steps: int, readout_lr: float,
        tmp: Path) -> dict[str, float]:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    from harness.analysis.channel_images import channel_images
    from harness.analysis.clusters import KERNELS, ClusterParams, cluster_units
    from harness.contracts import HeadInput
    from harness.factory import ExtractionOptions, Factory
    from harness.plugins import build_catalog, make_manager
    from harness.registry import load_registry
    from harness.settings import load_settings
    from tests.test_datasets_synthetic import _TestPlugins

    brain = {"backbone": "tiny", "n_stimuli": 400, "image_size": 32, "n_subjects": 1, "voxels_per_roi": 25, "seed": seed,
             "snr": snr, "roi_channel_share": share, "roi_layout": layout, "rf_size": [0.08, 0.2], "readout_grid": 8}
    head_args = {"bottleneck": 16, "max_steps": steps, "patience": 1000, "topology": topology, "readout_lr": readout_lr}
    reg = {"backbones": {"tiny": {"plugin": "tiny_cnn_test", "random_init": True, "args": {"width": 16}}},
           "heads": {"ft": {"plugin": "factortopy", "args": head_args}},
           "datasets": {"brain": {"plugin": "synthetic_voxels", "args": brain}}}
    (tmp / "registry.yaml").write_text(yaml.safe_dump(reg))
    catalog = build_catalog(*make_manager(extra_plugins=[_TestPlugins()]))
    settings = load_settings().with_overrides(registry=tmp / "registry.yaml", home=tmp / "home")
    f = Factory(catalog=catalog, registry=load_registry(catalog, tmp / "registry.yaml", settings), settings=settings,
                extraction=ExtractionOptions(batch_size=64, max_grid=16))
    ds = f.dataset("brain")
    stim, gt = ds.stimuli(), ds.ground_truth("sub01")  # type: ignore[attr-defined]
    tokens, targets = f.tokens_for("tiny", stim), ds.targets("sub01")
    head = f.build(f.registry.get("ft", "head"))
    t0 = time.perf_counter()
    out = head.fit_predict(HeadInput(targets=targets, stimuli=stim, tokens=tokens, seed=0))  # type: ignore[attr-defined]
    fit_s = time.perf_counter() - t0
    ro = head.channel_readout(Path(out.artifacts["model"]), tokens)  # type: ignore[attr-defined]
    k = len(gt.roi_names)
    res = {f"ari_{kern}": adjusted_rand_score(gt.rois, cluster_units(ro.weights, ClusterParams(k=k, kernel=kern)))
           for kern in KERNELS}
    res["ari_coords"] = adjusted_rand_score(gt.rois, AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(gt.xyz))
    grid = ro.aligned_local(np.arange(1)).shape[-1]
    for roi in gt.roi_names:
        errs = []
        for v in np.flatnonzero(gt.rois == roi)[::5]:
            m = channel_images(ro, np.arange(len(gt.rois)) == v, np.arange(1), responses=targets.responses,
                               map_idx=np.arange(len(stim)))
            errs.append(np.hypot(m.peak_xy[0] - gt.rf_x[v], m.peak_xy[1] - gt.rf_y[v]) * grid)
        res[f"peak_cells_{roi}"] = float(np.median(errs))
    res["fit_s"] = fit_s
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snr", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    p.add_argument("--share", type=float, default=0.8)
    p.add_argument("--layout", choices=["bands", "mixed"], default="mixed")
    p.add_argument("--topology", choices=["auto", "free"], default="free")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", type=int, nargs="+", default=[3], help="brain seeds (3: the test's brain)")
    p.add_argument("--readout-lr", type=float, default=10.0, help="FactorTopy readout_lr (the test's: 10)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for snr in a.snr:
        rows = []
        for seed in a.seeds:
            with tempfile.TemporaryDirectory() as d:
                r = run(snr, seed, a.share, a.layout, a.topology, a.steps, a.readout_lr, Path(d))
            rows.append(r)
            print(f"snr {snr:g} seed {seed}: " + "  ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
        ari = [k for k in rows[0] if k.startswith("ari_")]
        print(f"snr {snr:g} over {len(rows)} seeds: " + "  ".join(
            f"{k} mean {np.mean([r[k] for r in rows]):.3f} min {min(r[k] for r in rows):.2f}" for k in ari), flush=True)


if __name__ == "__main__":
    main()
