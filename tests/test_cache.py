"""The token cache is keyed on content: any change to weights, preprocessing, layers or stimuli misses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness_datasets.synthetic import procedural_images

from harness.cache import TokenCache
from harness.contracts import Stimuli
from harness.extract import ensure_tokens, tokens_key
from tests.helpers import make_factory

REG = {"backbones": {"mnv2": {"plugin": "torchvision", "random_init": True},
                     "mnv2b": {"plugin": "torchvision", "random_init": True}}}


@pytest.fixture
def factory(tmp_path: Path, harness_env: Path):
    return make_factory(REG, tmp_path, batch_size=4)


def test_extract_shapes_order_and_hit(factory, tmp_path: Path) -> None:
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


def test_batches_equal_one_pass(factory, tmp_path: Path) -> None:
    stim = Stimuli.from_array(procedural_images(5, 40, 1))
    bb = factory.backbone("mnv2")
    a = ensure_tokens(bb, stim, TokenCache(tmp_path / "a"), batch_size=2)
    b = ensure_tokens(bb, stim, TokenCache(tmp_path / "b"), batch_size=5)
    for layer in bb.layers:
        np.testing.assert_allclose(np.asarray(a.local(layer), np.float32), np.asarray(b.local(layer), np.float32), atol=1e-2, rtol=1e-2)


def test_key_changes_with_content(factory) -> None:
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


def test_interrupted_extraction_leaves_no_entry(factory, tmp_path: Path) -> None:
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


def test_layers_outside_float16_range_are_stored_in_float32(factory, tmp_path: Path) -> None:
    """A random-init MobileNetV2's deep maps peak far below float16's smallest normal (6e-5): kept in float32,
    they match an all-float32 extraction; float16 would have stored exact zeros."""
    stim = Stimuli.from_array(procedural_images(4, 48, 3))
    bb = factory.backbone("mnv2")
    half = ensure_tokens(bb, stim, TokenCache(tmp_path / "h"), batch_size=4)
    full = ensure_tokens(bb, stim, TokenCache(tmp_path / "f"), batch_size=4, store_dtype="float32")
    dtypes = half.meta["dtypes"]
    assert set(dtypes.values()) == {"float16", "float32"}  # early layers fit float16, deep ones do not
    for layer in bb.layers:
        ref = np.asarray(full.local(layer), np.float64)
        got = np.asarray(half.local(layer), np.float64)
        assert half.local(layer).dtype.name == dtypes[layer]
        peak = np.abs(ref).max()
        assert peak > 0 and np.abs(got - ref).max() <= 2e-3 * peak, layer
        if peak < 1e-4:
            assert dtypes[layer] == "float32"


def test_float16_overflow_in_a_later_batch_is_an_error(tmp_path: Path) -> None:
    """The first batch fixes a layer's dtype; a later batch beyond float16's range fails loudly, leaving no entry."""
    from types import SimpleNamespace

    import torch

    from harness.errors import HarnessError
    from harness.specs import Preprocess

    class Loud:
        layers = ("x",)
        preprocess = Preprocess(resize=8, crop=8)
        ctx = SimpleNamespace(entry=SimpleNamespace(name="loud", random_init=True))
        calls = 0

        def weights_digest(self) -> str:
            return "loud"

        def to(self, device: str) -> Loud:
            return self

        def tokens(self, x: torch.Tensor) -> dict:
            Loud.calls += 1
            scale = 10.0 if Loud.calls == 1 else 1e6
            local = torch.full((len(x), 2, 2, 2), scale)
            return {"x": SimpleNamespace(local=local, global_=local.mean((2, 3)))}

    cache = TokenCache(tmp_path / "c")
    with pytest.raises(HarnessError, match=r"'loud' layer 'x'.*rows 2\.\.3.*float16"):
        ensure_tokens(Loud(), Stimuli.from_array(procedural_images(4, 8, 0)), cache, batch_size=2)  # type: ignore[arg-type]
    assert cache.ls() == [] and not any(cache.root.iterdir())


@pytest.mark.parametrize("edge", [65504.0, 65505.0, 65519.0, 65520.0, 1e6, float("inf"), float("-inf"), float("nan"),
                                  -65505.0, 65503.0, 1.0])
def test_cast_and_overflow_guard_in_one_pass_match_the_float32_guard(edge: float) -> None:
    """`stored` guards on the float16 result; its verdict and stored bits must be the float32 guard's: values just
    above 65504 (which round to 65504, not inf) still fail, inf/NaN from the net still pass through."""
    import torch

    from harness.extract import FP16_MAX, _peak, stored

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 3, 5, 5, generator=g) * 100).contiguous(memory_format=torch.channels_last)
    x[2, 1, 3, 4] = edge
    out, peak = stored(x, torch.float16)
    assert out.is_contiguous() and out.dtype == torch.float16
    assert torch.equal(out.view(torch.int16), x.to(torch.float16, memory_format=torch.contiguous_format).view(torch.int16))
    old = _peak(x)
    assert (FP16_MAX < peak < float("inf")) == (FP16_MAX < old < float("inf"))
    kept, no_peak = stored(x, torch.float32)  # float32 layers are stored as they are, unguarded
    assert no_peak == 0.0 and kept.is_contiguous() and torch.equal(kept.view(torch.int32), x.contiguous().view(torch.int32))
