"""CPU bf16 autocast is allowed for a family only if its tokens correlate ≥ 0.999 with fp32.

benchmarks/bench_extraction.py measures the speed side and the same correlation for every
local family (with real weights, EfficientNet-Lite0 and MobileNetV2 fall just short, so they stay
fp32; CIFAR ResNets, ResNet-50, SE-ResNeXt-50, AlexNet and ViT pass and are faster, so precision
``auto`` uses bf16 for them on CPU); this test holds the accuracy criterion on a small net, with real
weights where ../shared has them, and checks which precision ``auto`` resolves to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cache import TokenCache
from harness.contracts import Stimuli
from harness.extract import ensure_tokens
from tests.conftest import SHARED_DATA
from tests.helpers import make_factory

skdata = pytest.importorskip("skimage.data")


def photos() -> Stimuli:
    ims = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    return Stimuli.from_array(np.stack([np.asarray(Image.fromarray(im).resize((96, 96))) for im in ims]))


@pytest.mark.parametrize("weights", ["random", "real"])
def test_bf16_tokens_correlate_with_fp32(weights: str, harness_env: Path) -> None:
    if weights == "real" and (SHARED_DATA is None or not (SHARED_DATA.parent / "weights").is_dir()):
        pytest.skip("../shared/weights (real CIFAR ResNet weights) is not present")
    f = make_factory({"backbones": {"r20": {"plugin": "cifar_resnet", "args": {"depth": 20, "layer_set": "blocks"},
                                            "random_init": weights == "random"}}}, harness_env)
    bb = f.backbone("r20")
    st = photos()
    cache = TokenCache(harness_env / "cache")
    full = ensure_tokens(bb, st, cache, precision="fp32", store_dtype="float32")
    low = ensure_tokens(bb, st, cache, precision="bf16", store_dtype="float32")
    assert full.key != low.key and low.meta["precision"] == "bf16"  # precision is part of the cache key
    for layer in full.layers:
        a = np.asarray(full.local(layer), np.float64).ravel()
        b = np.asarray(low.local(layer), np.float64).ravel()
        r = np.corrcoef(a, b)[0, 1]
        assert r >= 0.999, f"{layer}: bf16 tokens correlate only {r:.5f} with fp32"
        assert not np.array_equal(a, b), f"{layer}: bf16 autocast changed nothing (did it run?)"


def test_auto_precision_follows_the_measured_families(harness_env: Path) -> None:
    from harness.errors import HarnessError
    from harness.extract import resolve_precision
    from harness.plan import make_plan

    reg = {"backbones": {"r20": {"plugin": "cifar_resnet", "args": {"depth": 20}, "random_init": True},
                         "mnv2": {"plugin": "torchvision", "random_init": True},
                         "vit": {"plugin": "timm", "args": {"model": "vit_tiny_patch16_224"}, "random_init": True}},
           "heads": {"ridge": {"plugin": "ridge"}}, "metrics": {"pearson": {"plugin": "pearson"}},
           "datasets": {"syn": {"plugin": "synthetic_voxels", "args": {"backbone": "r20", "n_stimuli": 20,
                                                                      "voxels_per_roi": 2, "n_subjects": 1}}}}
    f = make_factory(reg, harness_env)
    assert f.extraction.precision == "auto"
    assert resolve_precision("auto", f.backbone("r20"), "cpu") == "bf16"  # measured r 0.99989, 1.5x
    assert resolve_precision("auto", f.backbone("vit"), "cpu") == "bf16"
    assert resolve_precision("auto", f.backbone("mnv2"), "cpu") == "fp32"  # r 0.9983 < 0.999
    assert resolve_precision("auto", f.backbone("mnv2"), "cuda") == "bf16"
    assert resolve_precision("fp32", f.backbone("r20"), "cpu") == "fp32"
    with pytest.raises(HarnessError, match="auto, fp32 or bf16"):
        resolve_precision("fp16", f.backbone("r20"), "cpu")
    # the resolved precision keys the jobs: an fp32 rerun of a bf16 job is a different job
    jobs = {j.backbone.name: j.config["extraction"]["precision"] for j in make_plan(f, everything=True).jobs}
    assert jobs == {"r20": "bf16", "mnv2": "fp32", "vit": "bf16"}
