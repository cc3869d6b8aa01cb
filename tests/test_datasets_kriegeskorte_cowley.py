"""Kriegeskorte 2008 and Cowley 2023 V4: real files with documented shapes; Cowley fixtures for bad input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from harness_datasets.cowley_v4 import SPLIT_DIR, image_names, make_split
from harness_datasets.synthetic import procedural_images
from harness_datasets.synthetic_brain import known_noise_ceiling_r
from PIL import Image

from harness.errors import DataError
from harness.plan import make_plan
from harness.runner import Runner
from harness.store import Store
from tests.helpers import make_factory
from tests.test_datasets_synthetic import tiny_factory

SESSIONS = {"190923": (33, 1200), "201025": (89, 1200), "210225": (55, 1200), "210325": (50, 640)}


# ----------------------------------------------------------------------------- Kriegeskorte 2008
def test_kriegeskorte_real(shared_data: Path, harness_env: Path, tmp_path: Path) -> None:
    f = make_factory({"datasets": {"k": {"plugin": "kriegeskorte92"},
                                   "ks": {"plugin": "kriegeskorte92", "args": {"sessions": "separate"}},
                                   "km": {"plugin": "kriegeskorte92", "args": {"species": "monkey"}}}}, tmp_path)
    k = f.dataset("k")
    st = k.stimuli()
    assert len(st) == 92 and st.load(0).size == (175, 175)
    t = k.targets("all")
    t.validate(92, "k")
    assert t.subject_ids == ["BE", "KO", "SN", "TI"] and t.rdms["hIT"].shape == (4, 92, 92)
    ts = f.dataset("ks").targets("all")
    assert ts.rdms["hIT"].shape == (8, 92, 92) and ts.subject_ids[:2] == ["BE_s1", "KO_s1"]
    np.testing.assert_allclose(t.rdms["hIT"][0], ts.rdms["hIT"][[0, 4]].mean(0))
    m = f.dataset("km").targets("all")
    assert m.rdms["mIT"].shape == (1, 92, 92) and m.subject_ids == ["monkey"]
    for r in (t.rdms["hIT"], m.rdms["mIT"]):
        assert np.allclose(r, r.transpose(0, 2, 1)) and np.all(np.diagonal(r, axis1=1, axis2=2) == 0)
    lo, hi = k.noise_ceilings()["hIT"]
    assert 0 < lo < hi < 1
    lab = k.labels()
    assert len(lab) == 92
    assert lab["animacy"].value_counts().to_dict() == {"animate": 48, "inanimate": 44}
    assert lab["kind4"].value_counts().to_dict() == {"body": 24, "face": 24, "natural": 23, "artificial": 21}
    assert lab.loc[0, "category"] == "human bodypart"


# ----------------------------------------------------------------------------- Cowley V4 real
@pytest.mark.parametrize("session", list(SESSIONS))
def test_cowley_real_sessions(shared_data: Path, harness_env: Path, tmp_path: Path, session: str) -> None:
    f = make_factory({"datasets": {"c": {"plugin": "cowley_v4", "args": {"session": session}}}}, tmp_path)
    ds = f.dataset("c")
    n_neurons, n_images = SESSIONS[session]
    t = ds.targets(session)
    t.validate(len(ds.stimuli()), session)
    assert t.responses.shape == (n_images, n_neurons)
    assert ds.stimuli().ids[0] == "image0001.jpg" and ds.stimuli().load(0).size == (112, 112)
    assert set(t.voxels["roi"]) == {"V4"} and not {"x", "y", "z"} & set(t.voxels.columns)
    assert len(t.test_idx) == round(0.2 * n_images)
    # the stored split equals its recomputation from the rule in the module docstring
    stored = json.loads((SPLIT_DIR / f"cowley_v4_{session}.json").read_text())
    names = image_names(shared_data / "cowley_v4", session)
    assert stored["test"] == make_split(names, session) == [names[i] for i in t.test_idx]
    if session == "210325":
        assert t.repeats.shape == (640, 10, 50)
        np.testing.assert_allclose(np.nanmean(t.repeats, 1), t.responses, atol=1e-4)
        assert 0.75 < np.median(t.noise_ceiling_r**2) < 0.78  # PROVENANCE: split-half median 0.76
    else:
        assert t.noise_ceiling_r is None


# ----------------------------------------------------------------------------- Cowley fixtures
def cowley_fixture(root: Path, session: str = "200101", n_img: int = 300, n_neur: int = 20, n_rep: int = 6,
                   snr: float = 0.5, seed: int = 0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    imgs = procedural_images(n_img, 16, seed)
    with zipfile.ZipFile(root / f"images_{session}.zip", "w") as z:
        z.writestr(f"images_{session}/", b"")
        for i in rng.permutation(n_img):  # stored out of order: the loader sorts by basename
            buf = io.BytesIO()
            Image.fromarray(imgs[i]).save(buf, format="PNG")
            z.writestr(f"images_{session}/image{i + 1:04d}.png", buf.getvalue())
    signal = rng.standard_normal((n_neur, n_img, 1))
    raw = signal + rng.standard_normal((n_neur, n_img, n_rep)) / np.sqrt(snr)
    drop = rng.random((n_neur, n_img, n_rep)) < 0.15
    drop[..., :2] = False  # every image keeps ≥ 2 repeats
    raw[drop] = np.nan
    np.save(root / f"responses_raw_{session}.npy", raw)
    np.save(root / f"responses_{session}.npy", np.nanmean(raw, 2))
    return root, raw


def test_cowley_split_half_ceiling_matches_planted(tmp_path: Path) -> None:
    root, raw = cowley_fixture(tmp_path / "cw", n_img=400, n_neur=30, n_rep=6, snr=0.5)
    f = make_factory({"datasets": {"c": {"plugin": "cowley_v4", "args": {"session": "200101", "root": str(root)}}}}, tmp_path)
    ds = f.dataset("c")
    t = ds.targets("200101")
    assert ds.stimuli().ids[:2] == ("image0001.png", "image0002.png")
    np.testing.assert_array_equal(np.asarray(ds.stimuli().load(4)), procedural_images(400, 16, 0)[4])
    n_eff = 1.0 / np.mean(1.0 / np.isfinite(raw).sum(2))  # harmonic mean of repeats per image (≈ 5.1)
    assert abs(np.median(t.noise_ceiling_r) - known_noise_ceiling_r(0.5, n_eff)) < 0.03
    # a custom seed is computed by the same rule, not read from a stored file
    f2 = make_factory({"datasets": {"c": {"plugin": "cowley_v4", "args": {"session": "200101", "root": str(root),
                                                                       "split_seed": 7}}}}, tmp_path)
    assert not np.array_equal(f2.dataset("c").targets("200101").test_idx, t.test_idx)


def test_nan_neuron_is_excluded_and_recorded(tmp_path: Path, harness_env: Path) -> None:
    root, raw = cowley_fixture(tmp_path / "cw", n_img=80, n_neur=6, n_rep=4)
    resp = np.nanmean(raw, 2)
    resp[3, 10] = np.nan
    np.save(root / "responses_200101.npy", resp)
    np.save(root / "responses_raw_200101.npy", np.where(np.arange(6)[:, None, None] == 3, np.nan, raw))
    f = tiny_factory(tmp_path, {"c": {"plugin": "cowley_v4", "args": {"session": "200101", "root": str(root)}}})
    reg = f.registry.entries | {}
    from harness.registry import Registry
    from harness.specs import RegistryEntry

    reg["pearson"] = RegistryEntry(name="pearson", kind="metric", plugin="pearson", args={"n_boot": 10})
    f.registry = Registry(entries=reg)
    t = f.dataset("c").targets("200101")
    assert t.n_excluded == 1 and "n003" not in set(t.voxels["voxel_id"]) and t.responses.shape == (80, 5)
    store = Store(tmp_path / "lb.duckdb")
    summary = Runner(f, store).run(make_plan(f, backbones=["tiny"], heads=["ridge"], datasets=["c"], metrics=["pearson"]))
    assert summary.done == 1 and not summary.failed
    assert store.query("SELECT n_excluded FROM jobs")["n_excluded"].tolist() == [1]


def test_cowley_bad_inputs(tmp_path: Path) -> None:
    root, _ = cowley_fixture(tmp_path / "cw", n_img=30, n_neur=4, n_rep=3)

    def ds(session: str = "200101"):
        return make_factory({"datasets": {"c": {"plugin": "cowley_v4", "args": {"session": session, "root": str(root)}}}},
                            tmp_path).dataset("c")

    assert f"{root / 'responses_999999.npy'}: missing" in ds("999999").unavailable_reason()
    np.save(root / "responses_200101.npy", np.zeros((4, 29)))
    with pytest.raises(DataError, match="29 image columns but 30 images"):
        ds().targets("200101")
    np.save(root / "responses_200101.npy", np.zeros((4, 30)))
    np.save(root / "responses_raw_200101.npy", np.zeros((4, 30)))
    with pytest.raises(DataError, match=r"responses_raw_200101\.npy: shape \(4, 30\), expected 3-D"):
        ds().targets("200101")
    with zipfile.ZipFile(root / "images_200101.zip", "a") as z:
        z.writestr("images_200101/image0031.png", b"garbage")
    stim = ds().stimuli()
    with pytest.raises(DataError, match=r"images_200101\.zip!images_200101/image0031\.png: corrupt"):
        stim.load(30)
