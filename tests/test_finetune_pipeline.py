"""Fine-tuning real MobileNetV2 weights: accuracy over the probe, derived backbones, determinism, interruption,
and fine-tune delta rows from `harness run --finetune`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from harness_finetune.derived_store import DerivedStore
from harness_finetune.pipeline import finetune_backbone
from harness_finetune.probe import accuracy
from harness_finetune.recipe import FinetuneConfig
from harness_finetune.tasks import make_task, split_per_class
from harness_finetune.training import global_tokens

from harness.contracts import Backbone, Stimuli
from harness.extract import tokens_key
from harness.plan import derived_selection
from tests.helpers import make_factory

#: only the fine-tune plugin's own entries (the derived backbones) join these test zoos
MOBILENET = {"plugin_entries": ["finetune"],
             "backbones": {"mobilenet_v2": {"plugin": "torchvision", "args": {"arch": "mobilenet_v2"}}}}
#: a tiny, fast fine-tune for structural checks (4 orientations, 32-px crops, 6 steps)
TINY_TASK = {"per_class": 12, "n_orientations": 4}
TINY = FinetuneConfig(steps=6, image_size=32, n_per_class=4, eval_batch_size=64)


@pytest.fixture
def mobilenet(harness_env: Path, shared_weights: Path):
    return make_factory(MOBILENET, harness_env)


def _task(factory, **args):
    return make_task("gratings", factory.catalog.manager, factory.settings, args)


@pytest.mark.slow
def test_finetune_beats_the_frozen_probe_and_registers_a_derived_backbone(mobilenet, harness_env: Path) -> None:
    cfg = FinetuneConfig(steps=80, image_size=64, n_per_class=20)
    task = _task(mobilenet)
    report = finetune_backbone(mobilenet, "mobilenet_v2", task, cfg)
    r = report.manifest.results
    assert not report.reused
    assert r["start_accuracy"] == r["probe_accuracy"]  # the classifier starts as the probe (LP-FT)
    assert r["val_accuracy"] >= r["probe_accuracy"] + 0.05, r  # orientation is linearly weak in the frozen top layer
    assert (r["n_train"], r["n_val"]) == (160, 240)

    # the registry (through the harness_finetune plugin) now lists it, linked to its parent
    f = make_factory(MOBILENET, harness_env)
    entry = f.registry.get(report.manifest.name, "backbone")
    assert entry.parent == "mobilenet_v2" and entry.plugin == "derived" and not entry.random_init and not entry.in_all
    derived, parent = f.backbone(entry.name), f.backbone("mobilenet_v2")
    assert isinstance(derived, Backbone) and derived.layers == parent.layers
    assert derived.weights_digest() == report.manifest.data["weights"]["digest"] != parent.weights_digest()

    # weights: same keys, changed values, and the file reloads bit-identically into the parent architecture
    from safetensors.torch import load_file

    d_sd, p_sd = derived.module().state_dict(), parent.module().state_dict()
    assert d_sd.keys() == p_sd.keys()
    changed = {k for k in d_sd if not torch.equal(d_sd[k], p_sd[k])}
    # every parameter up to the deepest tapped layer moved; BN running statistics stayed frozen; the ImageNet
    # classifier (after the tapped layers, so without gradients) is untouched
    trained = {k for k, _ in derived.module().named_parameters() if not k.startswith("classifier.")}
    assert changed == trained and len(trained) == 156
    on_disk = load_file(str(report.manifest.weights_path))
    assert all(torch.equal(on_disk[k], d_sd[k]) and on_disk[k].dtype == d_sd[k].dtype for k in d_sd)

    # the reloaded net + saved classifier reproduce the recorded validation accuracy exactly
    data = task.load()
    _, va = split_per_class(data.labels, cfg.n_per_class, cfg.val_fraction, cfg.max_val_per_class, cfg.seed)
    feats = global_tokens(derived, derived.layers[-1], data.stimuli, cfg.preprocess_for(derived.preprocess), va, 64, "cpu")
    head = load_file(str(report.manifest.path / "classifier.safetensors"))
    logits = feats @ head["weight"].double().numpy().T + head["bias"].double().numpy()
    assert accuracy(logits.argmax(1), data.labels[va]) == r["val_accuracy"]

    # derived tokens never share a cache entry with the parent's
    stim = Stimuli.from_array(np.zeros((1, 8, 8, 3), np.uint8))
    assert tokens_key(derived, stim, "fp32", 32) != tokens_key(parent, stim, "fp32", 32)

    # the same request again is answered from the store, without training
    again = finetune_backbone(f, "mobilenet_v2", task, cfg, progress=lambda *a: pytest.fail("retrained"))
    assert again.reused and again.manifest.id == report.manifest.id


def test_interrupted_finetune_leaves_nothing_and_reruns_deterministically(mobilenet, harness_env: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    reference = finetune_backbone(mobilenet, "mobilenet_v2", _task(mobilenet, **TINY_TASK), TINY).manifest

    monkeypatch.setenv("HARNESS_HOME", str(harness_env / "home2"))  # a fresh home: nothing to reuse
    f = make_factory(MOBILENET, harness_env)
    steps_seen: list[int] = []

    def interrupt(step: int, total: int, loss: float) -> None:
        steps_seen.append(step)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune_backbone(f, "mobilenet_v2", _task(f, **TINY_TASK), TINY, progress=interrupt)
    assert steps_seen == [1, 2, 3]
    store = DerivedStore(harness_env / "home2")
    assert store.manifests() == [] and not (store.root.exists() and any(store.root.iterdir()))
    assert not [n for n in make_factory(MOBILENET, harness_env).registry.entries if ".ft-" in n]

    rerun = finetune_backbone(f, "mobilenet_v2", _task(f, **TINY_TASK), TINY).manifest
    # deterministic on CPU at a fixed seed: same weights (hence same folder), same accuracies
    assert rerun.id == reference.id and rerun.name == reference.name
    # the weights digest covers tensor bytes only; the file's sha256 also covers the safetensors header, whose
    # metadata order is not stable across calls
    assert rerun.data["weights"]["digest"] == reference.data["weights"]["digest"]
    assert rerun.results["val_accuracy"] == reference.results["val_accuracy"]
    assert rerun.results["curve"] == reference.results["curve"]
    other_seed = finetune_backbone(f, "mobilenet_v2", _task(f, **TINY_TASK), TINY.model_copy(update={"seed": 1})).manifest
    assert other_seed.id != reference.id


def test_selection_pairs_bases_with_their_derived_backbones(mobilenet, harness_env: Path) -> None:
    m = finetune_backbone(mobilenet, "mobilenet_v2", _task(mobilenet, **TINY_TASK), TINY).manifest
    reg = {**MOBILENET, "backbones": {**MOBILENET["backbones"],
                         "mobilenet_v2_random": {"plugin": "torchvision", "args": {"arch": "mobilenet_v2"}, "random_init": True}}}
    f = make_factory(reg, harness_env)
    names, skips = derived_selection(f.registry, ["gratings"], ["mobilenet_v2", "mobilenet_v2_random"])
    assert names == ["mobilenet_v2", m.name]
    assert [s.what for s in skips] == ["backbone mobilenet_v2_random"] and "harness finetune" in skips[0].reason
    with pytest.raises(Exception, match="no derived backbones for task"):
        derived_selection(f.registry, ["k92_animacy"], None)


def test_corrupt_derived_weights_fail_loudly(mobilenet, harness_env: Path) -> None:
    from harness.errors import DataError

    m = finetune_backbone(mobilenet, "mobilenet_v2", _task(mobilenet, **TINY_TASK), TINY).manifest
    raw = bytearray(m.weights_path.read_bytes())
    raw[-1] ^= 0xFF
    m.weights_path.write_bytes(bytes(raw))
    bb = make_factory(MOBILENET, harness_env).backbone(m.name)
    with pytest.raises(DataError, match="sha256 differs"):
        bb.weights_digest()


@pytest.mark.slow
def test_run_finetune_writes_linked_delta_rows(harness_env: Path, shared_weights: Path, shared_data: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.store import Store

    reg = harness_env / "registry.yaml"
    reg.write_text(yaml.safe_dump({**MOBILENET, "heads": {"rsa": {"plugin": "rsa"}},
                                   "metrics": {"algonauts_r2": {"plugin": "rsa_r2", "args": {"n_boot": 50}}},
                                   "datasets": {"cichy92": {"plugin": "algonauts2019", "args": {"set": "92"}}}}))
    cli = CliRunner()
    ft = cli.invoke(app, ["--registry", str(reg), "finetune", "-b", "mobilenet_v2", "--task", "gratings",
                          "--task-arg", "per_class=12", "--task-arg", "n_orientations=4", "--steps", "6",
                          "--image-size", "32", "--n-per-class", "4", "--device", "cpu"])
    assert ft.exit_code == 0, ft.output
    (m,) = DerivedStore(harness_env / "home").manifests()
    out = cli.invoke(app, ["--registry", str(reg), "run", "-H", "rsa", "-d", "cichy92", "-m", "algonauts_r2",
                           "--finetune", "gratings", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "harness finetune --deltas --task gratings" in out.output
    shown = cli.invoke(app, ["--registry", str(reg), "finetune", "--deltas", "--task", "gratings"])
    assert shown.exit_code == 0 and "finetune_deltas" in shown.output and m.name in shown.output, shown.output

    store = Store(harness_env / "lb.duckdb")
    deltas = store.query("SELECT * FROM finetune_deltas ORDER BY roi")
    assert list(deltas.roi) == ["EVC", "IT", "mean"]
    assert set(deltas.base) == {"mobilenet_v2"} and set(deltas.derived) == {m.name} and set(deltas.task) == {"gratings"}
    lb = store.query("SELECT backbone, roi, raw FROM leaderboard WHERE metric = 'algonauts_r2'")
    raw = {(b, r): v for b, r, v in lb.itertuples(index=False)}
    for row in deltas.itertuples():
        assert row.base_raw == pytest.approx(raw[("mobilenet_v2", row.roi)])
        assert row.derived_raw == pytest.approx(raw[(m.name, row.roi)])
        assert row.delta_raw == pytest.approx(row.derived_raw - row.base_raw)
        assert row.task_finetuned_acc == m.results["val_accuracy"] and row.task_probe_acc == m.results["probe_accuracy"]
    # layer selection shift: centre of mass of the RSA head's leave-one-subject-out layer picks
    sel = store.query(
        "SELECT j.backbone, s.roi, sum(s.weight * s.layer_index / (s.n_layers - 1)) / sum(s.weight) AS com "
        "FROM selections s JOIN jobs j USING (job_id) WHERE s.selector = 'layer' GROUP BY ALL")
    com = {(b, r): v for b, r, v in sel.itertuples(index=False)}
    for row in deltas[deltas.roi != "mean"].itertuples():
        assert row.layer_shift == pytest.approx(com[(m.name, row.roi)] - com[("mobilenet_v2", row.roi)])
    parent = store.query(f"SELECT parent FROM entries WHERE name = '{m.name}'")
    assert list(parent.parent) == ["mobilenet_v2"]
