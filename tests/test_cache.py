"""The token cache is keyed on content: any change to weights, preprocessing, layers or stimuli misses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.cache import TokenCache
from harness.contracts import Stimuli
from harness.extract import ensure_tokens, tokens_key
from harness_datasets.synthetic import procedural_images
from tests.helpers import make_factory

REG = {"backbones": {"mnv2": {"plugin": "torchvision", "random_init": True},
                     "mnv2b": {"plugin": "torchvision", "random_init": True}}}


@pytest.fixture
def factory(tmp_path: Path, harness_env: Path):  # noqa: ANN201
    return make_factory(REG, tmp_path, batch_size=4)


def test_extract_shapes_order_and_hit(factory, tmp_path: Path) -> None:  # noqa: ANN001
    stim = Stimuli.from_array(procedural_images(6, 48, 0))
    bb = factory.backbone("mnv2")
    cache = TokenCache(tmp_path / "c")
    store = ensure_tokens(bb, stim, cache, batch_size=4, max_grid=16)
    assert store.layers == bb.layers and store.n == 6
    assert store.local("stage1").shape == (6, 16, 16, 16)  # 112×112 pooled to the 16 grid cap
    assert store.local("conv_last").shape == (6, 1280, 7, 7)
    np.testing.assert_allclose(store.global_("conv_last"), np.asarray(store.local("conv_last"), np.float32).mean((2, 3)), atol=2e-2)
    # second call is a hit: same directory, no rewrite
    mtime = (store.path / "meta.json").stat().st_mtime_ns
    again = ensure_tokens(bb, stim, cache, batch_size=4, max_grid=16)
    assert again.path == store.path and (again.path / "meta.json").stat().st_mtime_ns == mtime


def test_batches_equal_one_pass(factory, tmp_path: Path) -> None:  # noqa: ANN001
    stim = Stimuli.from_array(procedural_images(5, 40, 1))
    bb = factory.backbone("mnv2")
    a = ensure_tokens(bb, stim, TokenCache(tmp_path / "a"), batch_size=2)
    b = ensure_tokens(bb, stim, TokenCache(tmp_path / "b"), batch_size=5)
    for layer in bb.layers:
        np.testing.assert_allclose(np.asarray(a.local(layer), np.float32), np.asarray(b.local(layer), np.float32), atol=1e-2, rtol=1e-2)


def test_key_changes_with_content(factory) -> None:  # noqa: ANN001
    imgs = procedural_images(3, 32, 2)
    s1 = Stimuli.from_array(imgs)
    imgs2 = imgs.copy()
    imgs2[0, 0, 0, 0] ^= 1  # one bit of one pixel
    s2 = Stimuli.from_array(imgs2)
    bb = factory.backbone("mnv2")
    k = tokens_key(bb, s1, "fp32", 32)
    assert k != tokens_key(bb, s2, "fp32", 32)
    assert k != tokens_key(bb, s1, "bf16", 32)
    assert k != tokens_key(bb, s1, "fp32", 16)
    # same architecture and seed → same random weights → same key under a different entry name
    assert k == tokens_key(factory.backbone("mnv2b"), s1, "fp32", 32)
    # different weights → different key
    other = factory.backbone("mnv2b")
    import torch

    with torch.no_grad():
        next(other.net.parameters()).add_(1.0)
    other._digest = None
    assert k != tokens_key(other, s1, "fp32", 32)


def test_interrupted_extraction_leaves_no_entry(factory, tmp_path: Path) -> None:  # noqa: ANN001
    stim = Stimuli.from_array(procedural_images(6, 32, 3))
    bb = factory.backbone("mnv2")
    cache = TokenCache(tmp_path / "c")
    calls = {"n": 0}

    def boom(done: int, total: int) -> None:
        calls["n"] += 1
        if done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_tokens(bb, stim, cache, batch_size=2, progress=boom)
    assert cache.ls() == [] and not any(cache.root.iterdir())
    assert ensure_tokens(bb, stim, cache, batch_size=2).n == 6
