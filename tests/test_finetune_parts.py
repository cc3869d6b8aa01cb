"""Fine-tune building blocks: tasks, split, linear probe, recipe, and the atomic derived-backbone store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from harness_finetune.derived_store import MANIFEST, WEIGHTS, DerivedStore
from harness_finetune.probe import fit_probe
from harness_finetune.recipe import FinetuneConfig
from harness_finetune.tasks import make_task, parse_task_args, split_per_class, task_classes

from harness.errors import DataError, HarnessError
from harness.plugins import default_catalog
from harness.settings import load_settings
from harness.specs import Preprocess


# ----------------------------------------------------------------------------- split & recipe
def test_split_holds_out_validation_first_then_caps_training() -> None:
    y = np.repeat([0, 1, 2], [100, 30, 4])
    tr, va = split_per_class(y, n_per_class=50, val_fraction=0.3, max_val_per_class=20, seed=0)
    assert not set(tr) & set(va)
    assert [int((y[va] == c).sum()) for c in range(3)] == [20, 9, 1]  # 0.3·n, capped at 20, at least 1
    assert [int((y[tr] == c).sum()) for c in range(3)] == [50, 21, 3]  # up to 50 of what is left
    tr2, va2 = split_per_class(y, 50, 0.3, 20, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    with pytest.raises(DataError, match="class 1 has 1 image"):
        split_per_class(np.array([0, 0, 0, 1]), 5, 0.3, 5, 0)


def test_recipe_defaults_are_the_paper_recipe_and_key_on_every_field() -> None:
    cfg = FinetuneConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.steps, cfg.n_per_class) == (3e-5, 0.01, 4, 3000, 50)
    assert cfg.batchnorm == "frozen"
    assert FinetuneConfig(steps=10).digest() != cfg.digest() != FinetuneConfig(seed=1).digest()
    pre = Preprocess(resize=256, crop=224)
    assert cfg.preprocess_for(pre) is pre
    small = FinetuneConfig(image_size=64).preprocess_for(pre)
    assert (small.crop, small.resize, small.mean) == (64, 73, pre.mean)


# ----------------------------------------------------------------------------- probe
def test_linear_probe_matches_scikit_learn_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    y = np.arange(150) % 4
    x = rng.standard_normal((150, 12)) * rng.uniform(0.1, 5, 12) + rng.uniform(-3, 3, 12)
    x[:, :3] += rng.standard_normal((4, 3))[y]  # planted class means on three features
    probe = fit_probe(x, y, n_classes=4, c=0.5)
    z = (x - probe.mean) / probe.scale
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(z, y)
    np.testing.assert_allclose(probe.coef, ref.coef_, atol=2e-4)
    np.testing.assert_allclose(probe.intercept, ref.intercept_, atol=2e-4)
    # the unstandardised form gives the same logits on raw features
    w, b = probe.raw_weights()
    np.testing.assert_allclose(x @ w.T + b, probe.decision_function(x), atol=1e-9)


# ----------------------------------------------------------------------------- tasks
def test_task_catalog_lists_the_offline_tasks() -> None:
    ids = set(task_classes(default_catalog().manager))
    assert {"k92_animacy", "k92_category", "digits", "gratings", "imagefolder"} <= ids


def test_k92_labels_agree_with_the_category_strings(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.io

    monkeypatch.setenv("HARNESS_DATA_ROOT", str(shared_data))
    pm, settings = default_catalog().manager, load_settings()
    cat = make_task("k92_category", pm, settings).load()
    ani = make_task("k92_animacy", pm, settings).load()
    assert cat.counts() == {"face": 24, "body": 24, "natural": 23, "artificial": 21}
    assert ani.counts() == {"animate": 48, "inanimate": 44}
    assert len(cat.stimuli) == 92 and cat.stimuli.load(0).size == (175, 175)
    # independent check: the free-text category field of each stimulus
    m = scipy.io.loadmat(str(shared_data / "kriegeskorte92" / "Kriegeskorte_Neuron2008_supplementalData.mat"))
    text = [str(s["category"][0]) for s in m["stimuli_92objs"][0]]
    expect = ["face" if t.endswith("face") else "body" if t.endswith("bodypart") else t.split()[0] for t in text]
    assert [cat.classes[i] for i in cat.labels] == expect
    assert [ani.classes[i] for i in ani.labels] == ["inanimate" if "inanimate" in t else "animate" for t in text]
    # same images as the cichy92 set the brain data come with (same order): a digest changes if a pixel does
    assert cat.stimuli.digest == ani.stimuli.digest


def test_k92_without_data_root_says_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "none.toml"))
    task = make_task("k92_animacy", default_catalog().manager, load_settings())
    assert "HARNESS_DATA_ROOT" in (task.unavailable_reason() or "")
    with pytest.raises(DataError, match="HARNESS_DATA_ROOT"):
        task.load()


def test_gratings_are_deterministic_and_balanced() -> None:
    pm, settings = default_catalog().manager, load_settings()
    a = make_task("gratings", pm, settings, {"per_class": 5, "n_orientations": 4}).load()
    b = make_task("gratings", pm, settings, parse_task_args(["per_class=5", "n_orientations=4"])).load()
    assert a.digest == b.digest and a.counts() == {"0deg": 5, "45deg": 5, "90deg": 5, "135deg": 5}
    c = make_task("gratings", pm, settings, {"per_class": 5, "n_orientations": 4, "seed": 1}).load()
    assert c.digest != a.digest
    with pytest.raises(HarnessError, match=r"task 'gratings': args.per_clas: unknown argument"):
        make_task("gratings", pm, settings, {"per_clas": 5})


def test_digits_come_from_scikit_learn() -> None:
    from sklearn.datasets import load_digits

    d = make_task("digits", default_catalog().manager, load_settings(), {"upscale": 2}).load()
    ref = load_digits()
    assert len(d.stimuli) == len(ref.target) and np.array_equal(d.labels, ref.target)
    img = np.asarray(d.stimuli.load(7))
    assert img.shape == (16, 16, 3)
    np.testing.assert_array_equal(img[::2, ::2, 0], np.round(ref.images[7] * 255 / 16).astype(np.uint8))


def test_imagefolder_task(tmp_path: Path) -> None:
    from PIL import Image

    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "set" / cls / f"{i}.png")
    (tmp_path / "set" / "notes.txt").write_text("not a class")
    task = make_task(str(tmp_path / "set"), default_catalog().manager, load_settings())
    data = task.load()
    assert task.id == "folder-set" and data.classes == ("blue", "red") and data.counts() == {"blue": 3, "red": 3}
    assert data.stimuli.load(0).getpixel((0, 0)) == (0, 0, 255)
    with pytest.raises(HarnessError, match=r"unknown task 'nope'.*k92_animacy"):
        make_task("nope", default_catalog().manager, load_settings())


# ----------------------------------------------------------------------------- derived store
def _save(store: DerivedStore, digest: str = "ab" * 32) -> None:
    sd = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    store.save(digest, sd, {"weight": torch.zeros(2, 3)}, {
        "name": "p.ft-t-abababab", "key": "k1", "parent": {"name": "p", "weights_digest": "x"},
        "task": {"id": "t", "digest": "d"}, "recipe": {"steps": 1, "lr": 1.0}, "recipe_digest": "r",
        "results": {"probe_accuracy": 0.5, "val_accuracy": 0.75}})


def test_derived_store_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    store = DerivedStore(tmp_path)
    real = safetensors.torch.save_file
    calls = []

    def dies_on_second_file(*a, **k):
        calls.append(a[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(safetensors.torch, "save_file", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        _save(store)
    assert store.manifests() == [] and list(store.root.iterdir()) == []  # nothing visible, nothing left over
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    _save(store)
    (m,) = store.manifests()
    assert m.path.name == "ab" * 8 and (m.path / WEIGHTS).is_file() and m.weights_path == m.path / WEIGHTS
    assert store.find("k1") == m and store.find("k2") is None
    entry = store.registry_fragment()["backbones"]["p.ft-t-abababab"]
    assert entry["parent"] == "p" and entry["args"] == {"id": "ab" * 8} and entry["in_all"] is False
    assert entry["meta"]["task"] == "t" and entry["random_init"] is False


def test_folders_without_manifest_or_from_dead_processes_are_invisible(tmp_path: Path) -> None:
    store = DerivedStore(tmp_path)
    (store.root / "0123456789abcdef").mkdir(parents=True)  # weights written, manifest never was
    (store.root / "0123456789abcdef" / WEIGHTS).write_bytes(b"partial")
    stale = store.root / ".tmp-0123456789abcdef-999999999-1"
    stale.mkdir()
    (store.root / "fedcba9876543210").mkdir()
    (store.root / "fedcba9876543210" / MANIFEST).write_text("{not json")
    mine = store.root / f".tmp-0123456789abcdef-{os.getpid()}-1"
    mine.mkdir()
    assert store.manifests() == []
    assert store.clean_stale() == 1 and not stale.exists() and mine.exists()  # a live process's folder stays
    _save(store)
    assert [m.name for m in store.manifests()] == ["p.ft-t-abababab"]
    assert json.loads((store.root / ("ab" * 8) / MANIFEST).read_text())["weights"]["file"] == WEIGHTS
