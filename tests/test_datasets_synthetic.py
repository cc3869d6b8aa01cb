"""The synthetic ground-truth brain: determinism, known noise ceiling, planted truth recoverable.

A tiny random CNN (defined here, test-only) keeps extraction to a second; one test
uses the registry's MobileNetV2 to check the default entry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from harness_datasets.synthetic_brain import (
    BrainDesign,
    cell_gaussian,
    known_noise_ceiling_r,
    voxel_truth,
)

from harness.contracts import HeadInput, Stimuli
from harness.factory import ExtractionOptions, Factory
from harness.hookspecs import hookimpl
from harness.kit.ceilings import split_half_reliability
from harness.kit.scoring import pearson_columns
from harness.plugins import build_catalog, make_manager
from harness.settings import load_settings
from tests.helpers import TinyCNN


class _TestPlugins:
    @hookimpl
    def harness_plugins(self) -> list[type]:
        return [TinyCNN]


def tiny_factory(tmp_path: Path, datasets: dict, max_grid: int = 16) -> Factory:
    reg = {"backbones": {"tiny": {"plugin": "tiny_cnn_test", "random_init": True}},
           "heads": {"ridge": {"plugin": "ridge", "args": {"alphas": [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0], "pool": 4}}},
           "datasets": datasets}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(reg))
    catalog = build_catalog(*make_manager(extra_plugins=[_TestPlugins()]))
    settings = load_settings().with_overrides(registry=path, home=tmp_path / "home")
    return Factory.open(settings, catalog=catalog, extraction=ExtractionOptions(batch_size=64, max_grid=max_grid))


def syn(**kw: object) -> dict:
    args = {"backbone": "tiny", "n_stimuli": 160, "image_size": 32, "n_subjects": 2, "voxels_per_roi": 12, "seed": 3}
    args.update(kw)
    return {"plugin": "synthetic_voxels", "args": args}


def test_truth_fields_are_smooth_and_ordered() -> None:
    d = BrainDesign(rois=("V1", "V2", "V3", "IT"), voxels_per_roi=400, layer_jitter=0.3, mix_jitter=0.1, sheet="3d",
                    depth_range=(0.125, 0.875))
    t = voxel_truth(d, tuple(f"l{i}" for i in range(9)), 0)
    # hierarchy: the voxels' planted layers rise with ROI order at the planted slope (jitter is a smooth field)
    slope = np.polyfit(t["k"], t["layer_pos"], 1)[0]
    assert d.hierarchy_slope(9) == pytest.approx(2.0)
    assert abs(slope - 2.0) < 0.15
    assert 0.1 < t["layer_pos"][t["k"] == 0].std() < 0.5
    # retinotopy is continuous across the V1/V2 border (mirror reversal), RF size grows with ROI order
    x = t["xyz"][:, 0]
    near = np.abs(x - d.roi_width_mm) < 0.2
    assert np.ptp(t["rf_x"][near]) < 0.05
    sizes = [np.median(t["rf_size"][t["k"] == k]) for k in range(4)]
    assert all(np.diff(sizes) > 0)
    # smooth channel-weight fields: neighbours on the sheet have similar weights, far voxels do not
    phi, xy = t["phi"], t["xyz"][:, :2]
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    cos = (phi @ phi.T) / np.outer(np.linalg.norm(phi, axis=1), np.linalg.norm(phi, axis=1))
    assert cos[(dist > 0) & (dist < 0.5)].mean() > 0.9
    assert abs(cos[dist > 20].mean()) < 0.3
    assert np.ptp(t["xyz"][:, 2]) > 1.0  # the 3-D sheet is folded
    assert np.allclose(t["layer_weights"].sum(1), 1.0)


def test_cell_gaussian_integrates_like_scipy() -> None:
    from scipy import stats

    g = cell_gaussian(np.array([0.3]), np.array([0.1]), 10)[0]
    edges = np.linspace(0, 1, 11)
    ref = np.diff(stats.norm(0.3, 0.1).cdf(edges))
    assert np.allclose(g, ref / ref.sum())


def test_deterministic_saved_and_reloaded(tmp_path: Path) -> None:
    f = tiny_factory(tmp_path, {"syn": syn(), "other": syn(seed=4)})
    a = f.dataset("syn").targets("sub01")
    gt = f.dataset("syn").ground_truth("sub01")
    b = f.dataset("syn").targets("sub01")  # new instance: read back from disk
    np.testing.assert_array_equal(a.responses, b.responses)
    saved = list((tmp_path / "home" / "cache" / "synthetic").glob("*/subject000/truth.npz"))
    assert len(saved) == 1
    # regenerate from scratch: identical numbers
    for p in (tmp_path / "home" / "cache" / "synthetic").iterdir():
        import shutil

        shutil.rmtree(p)
    c = f.dataset("syn").targets("sub01")
    np.testing.assert_allclose(a.responses, c.responses, rtol=1e-5, atol=1e-5)
    assert not np.allclose(f.dataset("other").targets("sub01").responses, a.responses)
    # the two subjects share the brain template but sample different voxels and noise
    s2 = f.dataset("syn").ground_truth("sub02")
    assert not np.allclose(gt.xyz, s2.xyz)
    assert gt.hierarchy_slope == s2.hierarchy_slope
    a.validate(len(f.dataset("syn").stimuli()), "syn")
    assert set(a.voxels.columns) >= {"voxel_id", "roi", "x", "y", "z", "true_layer_index", "true_rf_x", "true_scale_mix"}
    assert gt.channel_weights("s3").shape == (len(gt.voxel_ids), 32)
    assert gt.signal.shape == a.responses.shape


def test_known_ceiling_matches_split_half(tmp_path: Path) -> None:
    """Tolerance: median over 96 voxels of the sqrt(Spearman–Brown split-half) vs the planted ceiling, ±0.03."""
    f = tiny_factory(tmp_path, {"syn": syn(n_stimuli=400, voxels_per_roi=24, snr=0.5, n_repeats=4, n_subjects=1)})
    t = f.dataset("syn").targets("sub01")
    empirical = np.sqrt(np.clip(split_half_reliability(t.repeats), 0, None))
    known = known_noise_ceiling_r(0.5, 4)
    assert np.allclose(t.noise_ceiling_r, known)
    assert abs(np.median(empirical) - known) < 0.03
    # the true signal itself correlates with the repeat average at the known ceiling
    gt = f.dataset("syn").ground_truth("sub01")
    r = pearson_columns(gt.signal, t.responses)
    assert abs(np.median(r) - known) < 0.03


def test_ridge_recovers_planted_layers_at_high_snr(tmp_path: Path) -> None:
    f = tiny_factory(tmp_path, {"syn": syn(n_stimuli=300, voxels_per_roi=16, snr=50.0, n_subjects=1,
                                           rois=("V1", "V2", "V4", "IT"), global_mix=(0.0, 0.3))})
    ds = f.dataset("syn")
    t = ds.targets("sub01")
    head = f.build(f.registry.get("ridge"))
    out = head.fit_predict(HeadInput(targets=t, stimuli=ds.stimuli(), tokens=f.tokens_for("tiny", ds.stimuli())))
    chosen = out.layer_weights.argmax(1)
    true = t.voxels["true_layer_index"].to_numpy()
    assert (chosen == true).mean() > 0.8
    # the per-ROI modal layer reproduces the planted hierarchy exactly
    modal = [np.bincount(chosen[t.voxels.roi == r]).argmax() for r in ("V1", "V2", "V4", "IT")]
    assert modal == [0, 1, 2, 3]
    r = pearson_columns(out.predictions, t.responses[t.test_idx])
    assert np.median(r) > 0.7


def test_rdm_twin_and_stimuli_from_another_dataset(tmp_path: Path) -> None:
    from tests.fixtures import algonauts_folder

    algo = algonauts_folder(tmp_path / "algo", n=20)
    f = tiny_factory(tmp_path, {
        "algo": {"plugin": "algonauts2019", "args": {"root": str(algo)}},
        "syn_rdm": {"plugin": "synthetic_rdms", "args": {**syn(n_subjects=3, snr=4.0)["args"], "stimuli": "algo"}},
        "self": {"plugin": "synthetic_voxels", "args": {**syn()["args"], "stimuli": "self"}},
    })
    ds = f.dataset("syn_rdm")
    assert ds.stimuli().digest == f.dataset("algo").stimuli().digest
    assert ds.subjects() == ["all"]
    t = ds.targets("all")
    t.validate(20, "syn_rdm")
    assert set(t.rdms) == {"V1", "V2", "V4", "IT"} and t.rdms["V1"].shape == (3, 20, 20)
    clean = ds.clean_rdms()
    from harness.kit.scoring import spearman_many, upper

    # measured RDMs estimate the clean ones: high SNR → close
    assert np.median(spearman_many(upper(clean["IT"].mean(0)), upper(t.rdms["IT"]))) > 0.8
    assert f.dataset("self").unavailable_reason() is not None


@pytest.mark.slow
def test_default_entry_generates_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's `synthetic` entry (240 stimuli, 200 voxels) generates in well under 30 s, from a
    generator whose every layer carries signal (a random MobileNetV2's deepest maps are exactly 0)."""
    import time

    import numpy as np

    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    top = yaml.safe_load((Path(__file__).resolve().parents[1] / "registry.yaml").read_text())
    from tests.helpers import make_factory

    gen = top["datasets"]["synthetic"]["args"]["backbone"]
    f = make_factory({"backbones": {gen: top["backbones"][gen]},
                      "datasets": {"synthetic": top["datasets"]["synthetic"]}}, tmp_path)
    ds = f.dataset("synthetic")
    store = ds._store  # extraction is the runner's cost, timed apart from generation
    for layer in store.layers:
        assert float(np.asarray(store.local(layer), np.float32).std()) > 1e-4, layer
    t0 = time.perf_counter()
    t = ds.targets("sub01")
    assert time.perf_counter() - t0 < 30
    assert t.responses.shape == (240, 200)


def test_stimuli_from_array_digest_is_content() -> None:
    from harness_datasets.synthetic import procedural_images

    a = Stimuli.from_array(procedural_images(4, 16, 0))
    b = Stimuli.from_array(procedural_images(4, 16, 1))
    assert a.digest != b.digest
