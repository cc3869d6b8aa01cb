"""The decoded-stimulus cache: decode + resize once per stimulus set and recipe, every backbone reads tensors.

Tokens must be bit-identical with and without it, a second backbone with the same recipe must not decode,
a damaged entry must be caught and rebuilt, and token keys (hence the leaderboard's job ids) must not move.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import harness.extract as extract_mod
from harness import cache_integrity
from harness.cache import TokenCache, decoded_key, token_key
from harness.contracts import Stimuli
from harness.extract import ensure_tokens, extract, stimulus_batches, tokens_key
from harness.kit.images import crop_image, iter_batches
from tests.conftest import SHARED_DATA
from tests.helpers import make_factory

REG = {"backbones": {"mnv2": {"plugin": "torchvision", "random_init": True},
                     "alex": {"plugin": "torchvision", "random_init": True, "args": {"arch": "alexnet"}},
                     "r20": {"plugin": "cifar_resnet", "random_init": True, "args": {"depth": 20}}}}
PHOTOS = SHARED_DATA / "cichy92" / "images"


@pytest.fixture
def factory(tmp_path: Path, harness_env: Path):
    return make_factory(REG, tmp_path, batch_size=4)


@pytest.fixture
def photos() -> Stimuli:
    """Six real JPEG photos of different sizes: the decode + resize the cache replaces is PIL's on them."""
    files = sorted(PHOTOS.glob("*.jpg"))[:6]
    if len(files) < 6:
        pytest.skip(f"{PHOTOS}: the Algonauts-92 photos are not on this machine")
    return Stimuli.from_files(files)


def _old_batch(stim: Stimuli, pre, idx: range) -> np.ndarray:
    """The float path as it was before the cache: PIL crop → float32 per image → /255 → normalise → CHW."""
    out = []
    for i in idx:
        arr = np.asarray(crop_image(stim.load(i), pre), dtype=np.float32) / 255.0
        arr = (arr - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        out.append(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return np.stack(out)


def _tokens(store) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {k: (np.array(store.local(k)), np.array(store.global_(k))) for k in store.layers}


def test_batches_and_tokens_bit_identical_with_and_without_the_cache(factory, photos: Stimuli, tmp_path: Path) -> None:
    bb = factory.backbone("mnv2")
    pre = bb.preprocess
    cache = TokenCache(tmp_path / "c")
    cold = list(stimulus_batches(photos, pre, 4, cache.decoded))  # decodes and writes the entry
    warm = list(stimulus_batches(photos, pre, 4, cache.decoded))  # reads it
    assert len(cache.decoded.ls()) == 1
    warm_cl = list(stimulus_batches(photos, pre, 4, cache.decoded, channels_last=True))  # a channels-last net's batches
    for (s1, b1), (s2, b2), (_, b3) in zip(cold, warm, warm_cl, strict=True):
        ref = _old_batch(photos, pre, range(s1, s1 + len(b1)))
        assert s1 == s2
        np.testing.assert_array_equal(b1.numpy(), ref)
        np.testing.assert_array_equal(b2.numpy(), ref)
        np.testing.assert_array_equal(b3.numpy(), ref)  # same values, in the net's memory order
        assert b3.is_contiguous(memory_format=torch.channels_last) and b1.is_contiguous()

    key = tokens_key(bb, photos, "fp32", 32)
    uncached = TokenCache(tmp_path / "ref")  # the former path: decoded now, nothing cached
    ref_store = extract(bb, iter_batches(photos, pre, 4), len(photos), uncached, key, {}, device="cpu", precision="fp32",
                        pool=lambda t: extract_mod._cap_grid(t, 32))
    assert bb.channels_last  # its batches are built channels-last; the reference's are NCHW
    with_cache = ensure_tokens(bb, photos, cache, batch_size=4)  # decoded entry already there: reads tensors
    assert with_cache.key == key
    ref, got = _tokens(ref_store), _tokens(with_cache)
    for layer in bb.layers:
        np.testing.assert_array_equal(got[layer][0], ref[layer][0])
        np.testing.assert_array_equal(got[layer][1], ref[layer][1])


def test_entry_reused_across_backbones_with_the_same_recipe(factory, photos: Stimuli, tmp_path: Path, monkeypatch) -> None:
    calls: list[range] = []
    real = extract_mod.decode_batch
    monkeypatch.setattr(extract_mod, "decode_batch", lambda s, p, idx: calls.append(idx) or real(s, p, idx))
    cache = TokenCache(tmp_path / "c")
    a, b = factory.backbone("mnv2"), factory.backbone("alex")
    assert a.preprocess == b.preprocess and a.weights_digest() != b.weights_digest()
    ensure_tokens(a, photos, cache, batch_size=4)
    assert [list(r) for r in calls] == [[0, 1, 2, 3], [4, 5]]  # the first backbone pays the decode, once
    ensure_tokens(b, photos, cache, batch_size=4)
    assert len(calls) == 2  # the second reads the decoded entry
    assert len(cache.ls()) == 2 and len(cache.decoded.ls()) == 1
    pixels = cache.decoded.ls()[0].pixels()
    assert isinstance(pixels, np.memmap) and pixels.shape == (6, 224, 224, 3) and pixels.dtype == np.uint8
    expected = np.asarray(crop_image(photos.load(5), a.preprocess))
    np.testing.assert_array_equal(pixels[5], expected)

    r20 = factory.backbone("r20")  # another recipe (32 px): its own entry, decoded once
    ensure_tokens(r20, photos, cache, batch_size=4)
    assert len(calls) == 4 and len(cache.decoded.ls()) == 2
    assert decoded_key(photos.digest, r20.preprocess.decode_recipe()) in {e.key for e in cache.decoded.ls()}
    # mean/std are not part of the decoded key: they are applied to the cached pixels
    other_norm = a.preprocess.model_copy(update={"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    assert decoded_key(photos.digest, other_norm.decode_recipe()) == decoded_key(photos.digest, a.preprocess.decode_recipe())


def test_damaged_decoded_entry_is_detected_and_rebuilt(factory, photos: Stimuli, tmp_path: Path, caplog, monkeypatch) -> None:
    bb = factory.backbone("mnv2")
    cache = TokenCache(tmp_path / "c")
    reference = _tokens(ensure_tokens(bb, photos, cache, batch_size=4))
    entry = cache.decoded.ls()[0]
    victim = entry.path / "pixels.npy"
    size, header = victim.stat().st_size, np.load(victim, mmap_mode="r").offset
    with open(victim, "r+b") as fh:  # same size, valid header, garbage pixels
        fh.seek(header)
        fh.write(np.random.default_rng(0).bytes(size - header))
    shutil.rmtree(cache.root)  # tokens gone: the next extraction reads the decoded entry
    calls: list[range] = []
    real = extract_mod.decode_batch
    monkeypatch.setattr(extract_mod, "decode_batch", lambda s, p, idx: calls.append(idx) or real(s, p, idx))
    with caplog.at_level(logging.WARNING, logger="harness.cache"):
        again = ensure_tokens(bb, photos, cache, batch_size=4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and entry.key in warnings[0] and "pixels.npy does not match its checksum" in warnings[0]
    assert len(calls) == 2  # decoded again
    assert len(list((cache.decoded.root / cache_integrity.QUARANTINE).iterdir())) == 1
    assert [e.key for e in cache.decoded.ls()] == [entry.key]
    for layer, (local, glob) in _tokens(again).items():
        np.testing.assert_array_equal(local, reference[layer][0])
        np.testing.assert_array_equal(glob, reference[layer][1])
    # a truncated entry is caught by its size alone
    with open(victim, "r+b") as fh:
        fh.truncate(size // 2)
    assert cache.decoded.get(entry.key) is None


def test_cache_cli_lists_and_verifies_decoded_entries(factory, photos: Stimuli, monkeypatch, capsys) -> None:
    from harness.settings import load_settings
    from tests.test_adversarial import cli

    cache = TokenCache(load_settings().cache_dir)
    ensure_tokens(factory.backbone("mnv2"), photos, cache, batch_size=4)
    entry = cache.decoded.ls()[0]
    code, out, err = cli(monkeypatch, capsys, "cache", "ls")
    assert code == 0, err
    assert "decoded stimuli" in out and entry.key[:12] in out
    code, out, err = cli(monkeypatch, capsys, "cache", "verify")
    assert code == 0 and "1 entry ok, 0 damaged" in out and "decoded stimuli: 1 entry ok, 0 damaged" in out, out + err
    victim = entry.path / "pixels.npy"
    with open(victim, "r+b") as fh:
        fh.seek(victim.stat().st_size - 1)
        last = fh.read(1)
        fh.seek(victim.stat().st_size - 1)
        fh.write(b"\x01" if last != b"\x01" else b"\x02")
    code, out, err = cli(monkeypatch, capsys, "cache", "verify")
    assert code == 1 and f"decoded stimuli: {entry.key}: pixels.npy does not match its checksum" in out, out + err
    code, out, err = cli(monkeypatch, capsys, "cache", "clear")
    assert code == 0 and "removed 1 cache entry and 1 decoded stimulus set" in out, out + err  # the quarantined one
    assert list(cache.decoded.root.iterdir()) == []


def test_token_keys_do_not_change() -> None:
    """The leaderboard's job ids hash token keys: this one was computed by the code before the decoded cache."""
    parts = {"weights": "w", "preprocess": {"resize": 256, "crop": 224, "interpolation": "bicubic",
                                            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
             "layers": ["a", "b"], "stimuli": "s", "precision": "fp32", "max_grid": 32}
    assert token_key(**parts) == "b293851e342b70cbcbad1e081ac19dad"


def test_procedural_images_of_any_size_round_trip(tmp_path: Path, factory) -> None:
    """Images smaller than the crop are upscaled, larger ones downscaled: the entry holds crop×crop for all."""
    imgs = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i, (h, w) in
            enumerate([(20, 30), (300, 240), (224, 224)])]
    stim = Stimuli(ids=("a", "b", "c"), load=lambda i: Image.fromarray(imgs[i]), digest="procedural-sizes")
    pre = factory.backbone("mnv2").preprocess
    cache = TokenCache(tmp_path / "c")
    first = np.concatenate([b.numpy() for _, b in stimulus_batches(stim, pre, 2, cache.decoded)])
    second = np.concatenate([b.numpy() for _, b in stimulus_batches(stim, pre, 2, cache.decoded)])
    np.testing.assert_array_equal(first, _old_batch(stim, pre, range(3)))
    np.testing.assert_array_equal(second, first)
