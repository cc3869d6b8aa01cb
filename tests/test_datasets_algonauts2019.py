"""Algonauts 2019: the real fMRI RDMs, and MEG / images.mat / joined sets on MATLAB-format fixtures."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from harness_datasets.synthetic import procedural_images
from PIL import Image

from harness.errors import DataError
from harness.scoring import rdm_from_features, spearman_many, upper
from tests.helpers import make_factory

MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."


def write_v73(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file: HDF5 behind a 512-byte user block, arrays stored with reversed axes (column-major)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, a in arrays.items():
            ds = f.create_dataset(k, data=np.asarray(a).transpose(tuple(range(a.ndim))[::-1]))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with path.open("r+b") as fh:
        fh.write(MATLAB_HEADER.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    return path


def noisy_rdms(base: np.ndarray, n_sub: int, rng: np.random.Generator, extra: tuple[int, ...] = ()) -> np.ndarray:
    n = base.shape[0]
    noise = rng.normal(0, 0.05, (n_sub, *extra, n, n))
    out = base + (noise + np.swapaxes(noise, -1, -2)) / 2
    idx = np.arange(n)
    out[..., idx, idx] = 0
    return out


def cichy_fixture(root: Path, n: int = 10, n_sub: int = 5, seed: int = 0, images: str = "jpg",
                  meg: bool = True, time_resolved: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    imgs = procedural_images(n, 24, seed)
    if images == "jpg":
        (root / "images").mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray(im).save(root / "images" / f"image_{i + 1:02d}.png")
    elif images == "mat_v5":
        from scipy.io import savemat

        vs = np.empty((1, n), dtype=[("names", "O"), ("pixels", "O")])
        for i, im in enumerate(imgs):
            vs[0, i] = (f"image_{i + 1:02d}.jpg", im)
        savemat(root / f"{n}images.mat", {"visual_stimuli": vs})
    elif images == "mat_v73":
        path = root / f"{n}images.mat"
        with h5py.File(path, "w", userblock_size=512) as f:
            refs = f.create_group("#refs#")
            g = f.create_group("visual_stimuli")
            name_refs, pix_refs = [], []
            for i, im in enumerate(imgs):
                nm = refs.create_dataset(f"n{i}", data=np.frombuffer(f"image_{i + 1:02d}.jpg".encode(), np.uint8)
                                         .astype(np.uint16)[:, None])
                px = refs.create_dataset(f"p{i}", data=im.transpose(2, 1, 0))
                name_refs.append(nm.ref)
                pix_refs.append(px.ref)
            g.create_dataset("names", data=np.array(name_refs, dtype=h5py.ref_dtype)[:, None])
            g.create_dataset("pixels", data=np.array(pix_refs, dtype=h5py.ref_dtype)[:, None])
    base = rdm_from_features(imgs.reshape(n, -1).astype(np.float64))
    write_v73(root / "target_fmri.mat", {"EVC_RDMs": noisy_rdms(base, n_sub, rng), "IT_RDMs": noisy_rdms(base, n_sub, rng)})
    if meg:
        write_v73(root / "target_meg.mat", {"MEG_RDMs_early": noisy_rdms(base, n_sub, rng, (2,)),
                                            "MEG_RDMs_late": noisy_rdms(base, n_sub, rng, (2,))})
    if time_resolved:
        t = noisy_rdms(base, n_sub, rng, (2, 40))  # S × sessions × time × N × N
        idx = np.arange(n)
        t[..., idx, idx] = np.nan
        write_v73(root / "MEG_decoding_RDMs.mat", {"MEG_decoding_RDMs": t})
    return root


def algo(tmp_path: Path, **args: object):
    f = make_factory({"datasets": {"d": {"plugin": "algonauts2019", "args": args}}}, tmp_path)
    return f.dataset("d")


# ----------------------------------------------------------------------------- real data
@pytest.mark.parametrize("set_name,n,nc", [("92", 92, {"EVC": 0.1589, "IT": 0.3075}), ("118", 118, {"EVC": 0.1048, "IT": 0.0728})])
def test_real_sets_load_with_documented_shapes(shared_data: Path, harness_env: Path, tmp_path: Path,
                                               set_name: str, n: int, nc: dict) -> None:
    ds = algo(tmp_path, set=set_name)
    assert ds.unavailable_reason() is None
    t = ds.targets("all")
    t.validate(len(ds.stimuli()), set_name)
    assert len(ds.stimuli()) == n and ds.stimuli().ids[0].startswith("image_0")
    for roi in ("EVC", "IT"):
        r = t.rdms[roi]
        assert r.shape == (15, n, n)
        assert np.allclose(r, r.transpose(0, 2, 1)) and np.all(np.diagonal(r, axis1=1, axis2=2) == 0)
    # the upper ceilings equal the Algonauts 2019 devkit's published values
    ceil = ds.noise_ceilings()
    for roi, value in nc.items():
        assert round(ceil[roi][1], 4) == value
        assert ceil[roi][0] < ceil[roi][1]
    assert t.roi_levels == {"EVC": 0.0, "IT": 1.0}


def test_mat_and_npz_agree(shared_data: Path, harness_env: Path, tmp_path: Path) -> None:
    root = tmp_path / "c92"
    root.mkdir()
    (root / "images").symlink_to(shared_data / "cichy92" / "images")
    (root / "target_fmri.mat").symlink_to(shared_data / "cichy92" / "target_fmri.mat")
    from_mat = algo(tmp_path, root=str(root)).targets("all")
    from_npz = algo(tmp_path, set="92").targets("all")
    for roi in ("EVC", "IT"):
        np.testing.assert_allclose(from_mat.rdms[roi], from_npz.rdms[roi], atol=1e-6)


def _silhouettes(stim, background: int, tol: int) -> np.ndarray:
    out = []
    for i in range(len(stim)):
        a = np.asarray(stim.load(i).convert("L").resize((64, 64)), np.int32)
        out.append((np.abs(a - background) > tol).ravel().astype(np.float64))
    return np.stack(out)


def test_cichy92_and_kriegeskorte92_share_image_order(shared_data: Path, harness_env: Path, tmp_path: Path) -> None:
    f = make_factory({"datasets": {"c": {"plugin": "algonauts2019"}, "k": {"plugin": "kriegeskorte92"}}}, tmp_path)
    c, k = f.dataset("c"), f.dataset("k")
    # object silhouettes (white vs grey backgrounds) correlate best with the same index
    sc, sk = _silhouettes(c.stimuli(), 255, 12), _silhouettes(k.stimuli(), 128, 6)
    corr = np.corrcoef(sc, sk)[:92, 92:]
    assert (corr.argmax(1) == np.arange(92)).mean() > 0.85
    # and the two labs' IT RDMs agree in this order, not in a shuffled one
    ci = upper(c.targets("all").rdms["IT"].mean(0))
    ki = k.targets("all").rdms["hIT"].mean(0)
    assert spearman_many(ci, upper(ki)[None])[0] > 0.4
    perm = np.random.default_rng(0).permutation(92)
    assert abs(spearman_many(ci, upper(ki[np.ix_(perm, perm)])[None])[0]) < 0.15


# ----------------------------------------------------------------------------- fixtures: MEG, images.mat, joined sets
def test_fmri_plus_meg_pairs_levels_and_averages_sessions(tmp_path: Path) -> None:
    root = cichy_fixture(tmp_path / "c", n=10, n_sub=5)
    ds = algo(tmp_path, root=str(root), modalities=["fmri", "meg"])
    assert ds.unavailable_reason() is None
    t = ds.targets("all")
    t.validate(10, "fixture")
    assert list(t.rdms) == ["EVC", "IT", "MEG_early", "MEG_late"]
    assert t.roi_levels == {"EVC": 0.0, "IT": 1.0, "MEG_early": 0.0, "MEG_late": 1.0}
    with h5py.File(root / "target_meg.mat", "r") as f:
        raw = np.asarray(f["MEG_RDMs_late"]).transpose(3, 2, 1, 0)  # MATLAB subjects × sessions × N × N
    np.testing.assert_allclose(t.rdms["MEG_late"], raw.mean(1))
    s2 = algo(tmp_path, root=str(root), modalities=["meg"], meg_sessions="2").targets("all")
    np.testing.assert_allclose(s2.rdms["MEG_late"], raw[:, 1])
    assert len(ds.noise_ceilings()) == 4


def test_time_resolved_meg_windows(tmp_path: Path) -> None:
    root = cichy_fixture(tmp_path / "c", n=8, n_sub=4, meg=False, time_resolved=True)
    ds = algo(tmp_path, root=str(root), modalities=["meg"], meg_windows=[], meg_times_ms=[-100, -80], meg_window_ms=5, images="seen")
    t = ds.targets("all")
    t.validate(8, "fixture")
    assert list(t.rdms) == ["MEG_t-100", "MEG_t-80"]
    with h5py.File(root / "MEG_decoding_RDMs.mat", "r") as f:
        raw = np.asarray(f["MEG_decoding_RDMs"]).transpose(4, 3, 2, 1, 0)  # S × sess × T × N × N
    expect = raw[:, :, 20:25].mean(axis=2).mean(1)  # -80 ms = sample 20 at -100 ms + 1 ms steps
    got = t.rdms["MEG_t-80"]
    off = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose(got[:, off], expect[:, off], atol=1e-9)
    assert np.all(np.diagonal(got, axis1=1, axis2=2) == 0)
    assert t.roi_levels["MEG_t-100"] < t.roi_levels["MEG_t-80"]
    with pytest.raises(DataError, match="no MEG samples"):
        algo(tmp_path, root=str(root), modalities=["meg"], meg_windows=[], meg_times_ms=[500], images="seen").targets("all")
    assert t.time_rdms == {}  # per-sample RDMs only when asked

    # meg_time_resolved: each window also carries its per-sample RDMs, whose time mean is the window's RDM
    tr = algo(tmp_path, root=str(root), modalities=["meg"], meg_windows=[], meg_times_ms=[-100, -80], meg_window_ms=5, images="seen",
              meg_time_resolved=True).targets("all")
    tr.validate(8, "fixture")
    per = tr.time_rdms["MEG_t-80"]
    assert per.shape == (4, 5, 8, 8)
    np.testing.assert_allclose(per.mean(axis=1), tr.rdms["MEG_t-80"], atol=1e-12)
    np.testing.assert_allclose(per[:, 2][:, off], raw[:, :, 22].mean(1)[:, off], atol=1e-9)  # sample at -78 ms
    np.testing.assert_allclose(per, per.transpose(0, 1, 3, 2))


@pytest.mark.parametrize("layout", ["mat_v5", "mat_v73"])
def test_images_from_images_mat(tmp_path: Path, layout: str) -> None:
    root = cichy_fixture(tmp_path / "c", n=6, n_sub=3, images=layout, meg=False)
    ds = algo(tmp_path, root=str(root))
    st = ds.stimuli()
    assert st.ids == tuple(f"image_{i + 1:02d}.jpg" for i in range(6))
    np.testing.assert_array_equal(np.asarray(st.load(2)), procedural_images(6, 24, 0)[2])
    ds.targets("all").validate(len(st), layout)


def test_joined_sets_and_78_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    cichy_fixture(data / "cichy92", n=8, n_sub=4, seed=1)
    cichy_fixture(data / "cichy78", n=6, n_sub=4, seed=2, images="mat_v5")
    monkeypatch.setenv("HARNESS_DATA_ROOT", str(data))
    ds = algo(tmp_path, sets=["92", "78"], modalities=["fmri", "meg"])
    st = ds.stimuli()
    assert len(st) == 14 and st.ids[0] == "92/image_01.png" and st.ids[8] == "78/image_01.jpg"
    t = ds.targets("all")
    t.validate(14, "joined")
    assert t.rdms["78/IT"].shape == (4, 6, 6)
    np.testing.assert_array_equal(t.stimuli_of("78/MEG_late", 14), np.arange(8, 14))
    np.testing.assert_array_equal(t.stimuli_of("92/EVC", 14), np.arange(8))
    assert t.roi_levels["78/MEG_early"] == t.roi_levels["92/EVC"] == 0.0
    # 78 alone, from its own folder name
    assert algo(tmp_path, set="78").targets("all").rdms["EVC"].shape == (4, 6, 6)


def test_bad_inputs_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = cichy_fixture(tmp_path / "c", n=6, n_sub=3, meg=False)
    ds = algo(tmp_path, root=str(root), modalities=["fmri", "meg"])
    reason = ds.unavailable_reason()
    assert reason is not None and str(root / "target_meg.mat") in reason and "MEG_RDMs_early" in reason
    # a MEG file with another subject count cannot share the subject list
    rng = np.random.default_rng(0)
    base = np.zeros((6, 6))
    write_v73(root / "target_meg.mat", {"MEG_RDMs_early": noisy_rdms(base, 4, rng, (2,)), "MEG_RDMs_late": noisy_rdms(base, 4, rng, (2,))})
    with pytest.raises(DataError, match="subject counts differ"):
        algo(tmp_path, root=str(root), modalities=["fmri", "meg"]).targets("all")
    # a missing variable names the file and what it holds
    write_v73(root / "target_meg.mat", {"MEG_RDMs_early": noisy_rdms(base, 3, rng, (2,))})
    with pytest.raises(DataError, match=r"target_meg\.mat: no variable\(s\) \['MEG_RDMs_late'\] \(found \['MEG_RDMs_early'\]\)"):
        algo(tmp_path, root=str(root), modalities=["meg"]).targets("all")
    # a non-square RDM stack
    write_v73(root / "target_fmri.mat", {"EVC_RDMs": np.zeros((3, 6, 5)), "IT_RDMs": np.zeros((3, 6, 5))})
    with pytest.raises(DataError, match="EVC_RDMs has shape"):
        algo(tmp_path, root=str(root)).targets("all")
    # a corrupt image names the image
    (root / "images" / "image_03.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"image_03\.png: corrupt"):
        algo(tmp_path, root=str(root)).stimuli().load(2)
    # no data root: the reason says what to set
    monkeypatch.delenv("HARNESS_DATA_ROOT", raising=False)
    (tmp_path / "x").mkdir()
    assert "HARNESS_DATA_ROOT is not set" in algo(tmp_path / "x", set="118").unavailable_reason()
