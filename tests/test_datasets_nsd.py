"""NSD and Algonauts 2023 loaders on small fixtures written in the real formats (nibabel .mgh/.mgz/NIfTI, .npy)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.errors import DataError
from tests.helpers import make_factory

nib = pytest.importorskip("nibabel")

N_VERT, N_SESS, N_TRIALS, N_IMG = 24, 3, 12, 40
STREAMS = {1: "early", 2: "midventral", 5: "ventral"}


def _mgh(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(data, np.eye(4)), str(path))


def _nii(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def nsd_fixture(root: Path, seed: int = 0) -> dict:
    """Subject 1: 3 sessions × 12 trials; images 1–5 (of subjectim) are the shared ones, shown 3× each."""
    rng = np.random.default_rng(seed)
    from scipy.io import savemat

    subjectim = np.zeros((8, 20), np.int64)
    subjectim[:, :5] = rng.choice(np.arange(1, N_IMG + 1), 5, replace=False)
    for s in range(8):
        rest = np.setdiff1d(np.arange(1, N_IMG + 1), subjectim[0, :5])
        subjectim[s, 5:] = rng.choice(rest, 15, replace=False)
    order = np.concatenate([np.repeat(np.arange(1, 6), 3), rng.choice(np.arange(6, 21), 21)])
    order = order[rng.permutation(len(order))]
    design = root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"
    design.parent.mkdir(parents=True)
    savemat(design, {"masterordering": order[None], "subjectim": subjectim, "sharedix": subjectim[:1, :5]})
    brick = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    brick.parent.mkdir(parents=True)
    imgs = rng.integers(0, 255, (N_IMG, 8, 8, 3), dtype=np.uint8)
    with h5py.File(brick, "w") as f:
        f.create_dataset("imgBrick", data=imgs)
    bdir = root / "nsddata_betas" / "ppdata" / "subj01" / "fsaverage" / "betas_fithrf_GLMdenoise_RR"
    label = root / "nsddata" / "freesurfer" / "fsaverage" / "label"
    surf = root / "nsddata" / "freesurfer" / "fsaverage" / "surf"
    data: dict = {"order": order, "subjectim": subjectim, "imgs": imgs, "betas": {}, "ncsnr": {}, "mask": {}, "streams": {},
                  "coords": {}}
    for h in ("lh", "rh"):
        for s in range(1, N_SESS + 1):
            b = rng.standard_normal((N_VERT, 1, 1, N_TRIALS)).astype(np.float32) * 2 + 1
            data["betas"][(h, s)] = b[:, 0, 0]
            _mgh(bdir / f"{h}.betas_session{s:02d}.mgh", b)
        nc = rng.uniform(0.1, 1.5, (N_VERT, 1, 1)).astype(np.float32)
        data["ncsnr"][h] = nc.ravel()
        _mgh(bdir / f"{h}.ncsnr.mgh", nc)
        mask = rng.choice([-1, 0, 1], N_VERT, p=[0.1, 0.3, 0.6]).astype(np.int32)
        mask[:3] = 1
        data["mask"][h] = mask
        _mgh(label / f"{h}.nsdgeneral.mgz", mask[:, None, None])
        streams = rng.choice([0, 1, 2, 5], N_VERT).astype(np.int32)
        streams[:3] = [1, 2, 5]
        data["streams"][h] = streams
        _mgh(label / f"{h}.streams.mgz", streams[:, None, None])
        for name in ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words"):
            _mgh(label / f"{h}.{name}.mgz", rng.choice([0, 1, 2, 3], N_VERT).astype(np.int32)[:, None, None])
        coords = rng.standard_normal((N_VERT, 3)) * 100
        data["coords"][h] = coords
        surf.mkdir(parents=True, exist_ok=True)
        nib.freesurfer.write_geometry(str(surf / f"{h}.sphere"), coords, np.array([[0, 1, 2]]))
    (label / "streams.mgz.ctab").write_text("0 Unknown 0 0 0 0\n" + "".join(f"{k} {v} 1 1 1 0\n" for k, v in STREAMS.items()))
    return data


def nsd(tmp_path: Path, root: Path, **args: object):
    f = make_factory({"datasets": {"n": {"plugin": "nsd", "args": {"root": str(root), **args}}}}, tmp_path)
    return f.dataset("n")


def expected_responses(data: dict, hemis=("lh", "rh"), sessions=(1, 2, 3)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent reference: z-score each session per vertex, then average each image's trials."""
    ids73k = data["subjectim"][0, data["order"] - 1]
    trial_sessions = np.repeat(np.arange(1, N_SESS + 1), N_TRIALS)
    cols = []
    for h in hemis:
        sel = data["mask"][h] > 0
        z = []
        for s in sessions:
            b = data["betas"][(h, s)][sel].T.astype(np.float64)
            z.append((b - b.mean(0)) / b.std(0))
        cols.append(np.concatenate(z))
    trials = np.concatenate(cols, axis=1)
    used = np.isin(trial_sessions, sessions)
    ids = ids73k[used]
    stim = np.unique(ids)
    resp = np.stack([trials[ids == i].mean(0) for i in stim])
    counts = np.array([(ids == i).sum() for i in stim])
    return stim, resp, counts


def test_nsd_fsaverage_matches_reference(tmp_path: Path) -> None:
    root = tmp_path / "nsd"
    data = nsd_fixture(root)
    assert nsd(tmp_path, root).targets("subj01").voxels.columns.tolist() == ["voxel_id", "roi", "hemi", "fsaverage_index",
                                                                             "x", "y", "z", "streams"]
    ds = nsd(tmp_path, root, label_files=["prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words", "streams"])
    assert ds.unavailable_reason() is None
    t = ds.targets("subj01")
    st = ds.stimuli()
    t.validate(len(st), "nsd")
    stim, resp, counts = expected_responses(data)
    assert st.ids == tuple(f"nsd{i:05d}" for i in stim)
    np.testing.assert_array_equal(np.asarray(st.load(0)), data["imgs"][stim[0] - 1])
    np.testing.assert_allclose(t.responses, resp, atol=1e-5)
    # repeats layout: stimuli × max repeats × voxels, NaN padded
    np.testing.assert_array_equal(np.isfinite(t.repeats[:, :, 0]).sum(1), counts)
    # shared-1000 test split: exactly the shared images (shown 3× each)
    shared = np.isin(stim, data["subjectim"][0, :5])
    np.testing.assert_array_equal(t.test_idx, np.flatnonzero(shared))
    assert set(counts[shared]) == {3}
    # voxel table: labels from the ctab, coordinates from the sphere, rh shifted
    lh_sel = np.flatnonzero(data["mask"]["lh"] > 0)
    rh_sel = np.flatnonzero(data["mask"]["rh"] > 0)
    assert len(t.voxels) == len(lh_sel) + len(rh_sel)
    assert list(t.voxels["roi"][:3]) == ["early", "midventral", "ventral"]
    np.testing.assert_allclose(t.voxels[["x", "y", "z"]].to_numpy()[: len(lh_sel)], data["coords"]["lh"][lh_sel])
    np.testing.assert_allclose(t.voxels[["x", "y", "z"]].to_numpy()[len(lh_sel):],
                               data["coords"]["rh"][rh_sel] + [250.0, 0, 0])
    assert {"hemi", "prf-visualrois", "floc-faces", "streams"} <= set(t.voxels.columns)
    np.testing.assert_array_equal(t.voxels["fsaverage_index"], np.concatenate([lh_sel, rh_sel]))
    assert list(t.voxels["hemi"]) == ["lh"] * len(lh_sel) + ["rh"] * len(rh_sel)
    assert t.roi_levels == {"early": 0, "midventral": 1, "ventral": 2}
    # NC = ncsnr² / (ncsnr² + mean over test images of 1/n), as r
    snr = np.concatenate([data["ncsnr"]["lh"][lh_sel], data["ncsnr"]["rh"][rh_sel]])
    nc = snr**2 / (snr**2 + np.mean(1.0 / counts[shared]))
    np.testing.assert_allclose(t.noise_ceiling_r, np.sqrt(nc), rtol=1e-5)
    assert t.n_excluded == 0


def test_nsd_reads_only_what_is_asked(tmp_path: Path) -> None:
    root = tmp_path / "nsd"
    data = nsd_fixture(root)
    bdir = root / "nsddata_betas" / "ppdata" / "subj01" / "fsaverage" / "betas_fithrf_GLMdenoise_RR"
    (bdir / "lh.betas_session03.mgh").write_bytes(b"corrupt")  # never opened below
    for p in bdir.glob("rh.*"):
        p.unlink()
    ds = nsd(tmp_path, root, sessions=[1, 2], hemis=["lh"], rois=["early", "ventral"])
    t = ds.targets("subj01")
    _, resp, _ = expected_responses(data, hemis=("lh",), sessions=(1, 2))
    keep = np.isin(data["streams"]["lh"][data["mask"]["lh"] > 0], [1, 5])
    np.testing.assert_allclose(t.responses, resp[:, keep], atol=1e-5)
    assert set(t.voxels["roi"]) == {"early", "ventral"}
    # asking for the corrupt session names it
    with pytest.raises(DataError, match=r"lh\.betas_session03\.mgh: not a readable MGH/NIfTI"):
        nsd(tmp_path, root, hemis=["lh"]).targets("subj01")


def test_nsd_volume_int16_scaling_and_affine(tmp_path: Path) -> None:
    root = tmp_path / "nsd"
    data = nsd_fixture(root)
    rng = np.random.default_rng(1)
    shape = (4, 5, 3)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = [-10, -20, 5]
    vdir = root / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    raw = {}
    for s in range(1, N_SESS + 1):
        raw[s] = rng.integers(-3000, 3000, (*shape, N_TRIALS)).astype(np.int16)
        _nii(vdir / f"betas_session{s:02d}.nii.gz", raw[s], affine)
    _nii(vdir / "ncsnr.nii.gz", rng.uniform(0.2, 1, shape).astype(np.float32), affine)
    rdir = root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi"
    mask = np.zeros(shape, np.int16)
    mask[1:3, 2:4, 1] = 1
    _nii(rdir / "nsdgeneral.nii.gz", mask, affine)
    for name in ("streams", "prf-visualrois"):
        _nii(rdir / f"{name}.nii.gz", (mask * 1).astype(np.int16), affine)
    ds = nsd(tmp_path, root, space="func1pt8mm", zscore_sessions=False, label_files=["prf-visualrois"])
    t = ds.targets("subj01")
    ijk = np.argwhere(mask > 0)
    ids73k = data["subjectim"][0, data["order"] - 1]
    trials = np.concatenate([raw[s][tuple(ijk.T)].T for s in (1, 2, 3)]) / 300.0  # percent signal change
    stim = np.unique(ids73k)
    np.testing.assert_allclose(t.responses, np.stack([trials[ids73k == i].mean(0) for i in stim]), atol=1e-5)
    np.testing.assert_allclose(t.voxels[["x", "y", "z"]].to_numpy(), ijk * 1.8 + [-10, -20, 5])
    assert set(t.voxels["roi"]) == {"early"} and set(t.voxels["prf-visualrois"]) == {"V1v"}
    assert "fsaverage_index" not in t.voxels  # volume voxels are not surface vertices


def test_nsd_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "nsd"
    nsd_fixture(root)
    bdir = root / "nsddata_betas" / "ppdata" / "subj01" / "fsaverage" / "betas_fithrf_GLMdenoise_RR"
    label = root / "nsddata" / "freesurfer" / "fsaverage" / "label"
    # a missing session file is named, with the layout
    (bdir / "rh.betas_session02.mgh").rename(bdir / "rh.moved")
    reason = nsd(tmp_path, root, sessions=[1, 2]).unavailable_reason()
    assert str(bdir / "rh.betas_session02.mgh") in reason and "NSD release layout" in reason
    (bdir / "rh.moved").rename(bdir / "rh.betas_session02.mgh")
    # a session with another vertex count
    _mgh(bdir / "lh.betas_session02.mgh", np.zeros((N_VERT + 1, 1, 1, N_TRIALS), np.float32))
    with pytest.raises(DataError, match=r"lh\.betas_session02\.mgh: \(25,\) vertices/voxels × 12 trials, expected \(24,\)"):
        nsd(tmp_path, root).targets("subj01")
    _mgh(bdir / "lh.betas_session02.mgh", np.ones((N_VERT, 1, 1, N_TRIALS), np.float32))  # constant → NaN z-scores
    t = nsd(tmp_path, root).targets("subj01")
    n_lh = int((nib.load(str(label / "lh.nsdgeneral.mgz")).get_fdata() > 0).sum())
    assert t.n_excluded == n_lh and (t.voxels["hemi"] == "rh").all()
    # a mask that does not fit the betas
    _mgh(label / "rh.nsdgeneral.mgz", np.ones((N_VERT - 2, 1, 1), np.int32))
    with pytest.raises(DataError, match=r"rh\.nsdgeneral\.mgz: shape \(22,\) but betas"):
        nsd(tmp_path, root, hemis=["rh"]).targets("subj01")
    _mgh(label / "rh.nsdgeneral.mgz", np.ones((N_VERT, 1, 1), np.int32))
    # a label value the colour table does not name
    _mgh(label / "rh.streams.mgz", np.full((N_VERT, 1, 1), 9, np.int32))
    with pytest.raises(DataError, match=r"rh\.streams\.mgz: label values \[9\] have no name"):
        nsd(tmp_path, root, hemis=["rh"]).targets("subj01")
    _mgh(label / "rh.streams.mgz", np.ones((N_VERT, 1, 1), np.int32))
    (root / "nsddata" / "freesurfer" / "fsaverage" / "surf" / "rh.sphere").unlink()
    with pytest.raises(DataError, match=r"rh\.sphere: missing FreeSurfer surface"):
        nsd(tmp_path, root, hemis=["rh"]).targets("subj01")
    with pytest.raises(DataError, match="subjectim has 8 subjects; no subject 9"):
        nsd(tmp_path, root, subject=9, sessions=[1]).stimuli()


# ----------------------------------------------------------------------------- Algonauts 2023
def a23_fixture(root: Path, n_train: int = 30, n_test: int = 8, n_v: dict | None = None, test_fmri: bool = True,
                seed: int = 0) -> dict:
    from PIL import Image

    rng = np.random.default_rng(seed)
    n_v = n_v or {"lh": 15, "rh": 11}
    sub = root / "subj01"
    out: dict = {"fmri": {}, "nc": {}, "streams": {}, "fs": {}}
    for split, n in (("training", n_train), ("test", n_test)):
        d = sub / f"{split}_split" / f"{split}_images"
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"{split[:5]}-{i + 1:04d}_nsd-{i:05d}.png")
    masks = sub / "roi_masks"
    masks.mkdir()
    for h, v in n_v.items():
        tr = rng.standard_normal((n_train, v)).astype(np.float32)
        te = rng.standard_normal((n_test, v)).astype(np.float32)
        out["fmri"][h] = np.concatenate([tr, te])
        (sub / "training_split" / "training_fmri").mkdir(exist_ok=True, parents=True)
        np.save(sub / "training_split" / "training_fmri" / f"{h}_training_fmri.npy", tr)
        if test_fmri:
            (sub / "test_split" / "test_fmri").mkdir(exist_ok=True, parents=True)
            np.save(sub / "test_split" / "test_fmri" / f"{h}_test_fmri.npy", te)
            (sub / "test_split" / "noise_ceiling").mkdir(exist_ok=True, parents=True)
            nc = rng.uniform(0, 80, v)  # NSD percent scale
            out["nc"][h] = nc
            np.save(sub / "test_split" / "noise_ceiling" / f"{h}_noise_ceiling.npy", nc)
        streams = rng.choice([0, 1, 5, 6], v)
        out["streams"][h] = streams
        np.save(masks / f"{h}.streams_challenge_space.npy", streams)
        for name in ("prf-visualrois", "floc-bodies", "floc-faces", "floc-places", "floc-words"):
            np.save(masks / f"{h}.{name}_challenge_space.npy", rng.choice([0, 1, 2], v))
        fs = np.zeros(50, np.int64)
        fs[np.sort(rng.choice(50, v, replace=False))] = 1
        out["fs"][h] = fs
        np.save(masks / f"{h}.all-vertices_fsaverage_space.npy", fs)
    np.save(masks / "mapping_streams.npy", {0: "Unknown", 1: "early", 5: "ventral", 6: "lateral"}, allow_pickle=True)
    return out


def a23(tmp_path: Path, root: Path, **args: object):
    f = make_factory({"datasets": {"a": {"plugin": "algonauts2023", "args": {"root": str(root), **args}}}}, tmp_path)
    return f.dataset("a")


def test_algonauts2023_layout(tmp_path: Path) -> None:
    root = tmp_path / "a23"
    data = a23_fixture(root)
    fsdir = tmp_path / "fsaverage"
    (fsdir / "surf").mkdir(parents=True)
    coords = {h: np.random.default_rng(3).standard_normal((50, 3)) for h in ("lh", "rh")}
    for h in ("lh", "rh"):
        nib.freesurfer.write_geometry(str(fsdir / "surf" / f"{h}.sphere"), coords[h], np.array([[0, 1, 2]]))
    ds = a23(tmp_path, root, fsaverage=str(fsdir))
    assert ds.unavailable_reason() is None
    t = ds.targets("subj01")
    t.validate(len(ds.stimuli()), "a23")
    assert ds.stimuli().ids[0] == "training/train-0001_nsd-00000.png" and len(ds.stimuli()) == 38
    np.testing.assert_array_equal(t.test_idx, np.arange(30, 38))
    np.testing.assert_allclose(t.responses, np.concatenate([data["fmri"]["lh"], data["fmri"]["rh"]], axis=1), atol=1e-6)
    names = {0: "other", 1: "early", 5: "ventral", 6: "lateral"}
    assert list(t.voxels["roi"]) == [names[v] for v in np.concatenate([data["streams"]["lh"], data["streams"]["rh"]])]
    # the challenge's percent-scale NC → fraction → r
    np.testing.assert_allclose(t.noise_ceiling_r, np.sqrt(np.concatenate([data["nc"]["lh"], data["nc"]["rh"]]) / 100))
    fs_lh = np.flatnonzero(data["fs"]["lh"])
    np.testing.assert_array_equal(t.voxels["fsaverage_index"][:15], fs_lh)
    np.testing.assert_allclose(t.voxels[["x", "y", "z"]].to_numpy()[:15], coords["lh"][fs_lh])
    only = a23(tmp_path, root, rois=["ventral"], hemis=["rh"]).targets("subj01")
    assert set(only.voxels["roi"]) == {"ventral"} and len(only.voxels) == int((data["streams"]["rh"] == 5).sum())


def test_algonauts2023_without_test_fmri_and_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "a23"
    a23_fixture(root, test_fmri=False)
    t = a23(tmp_path, root).targets("subj01")
    assert len(t.train_idx) + len(t.test_idx) == 30 and t.noise_ceiling_r is None
    fmri = root / "subj01" / "training_split" / "training_fmri"
    np.save(fmri / "lh_training_fmri.npy", np.zeros((29, 15), np.float32))
    with pytest.raises(DataError, match=r"lh_training_fmri\.npy: shape \(29, 15\), expected 30 training images"):
        a23(tmp_path, root).targets("subj01")
    np.save(fmri / "lh_training_fmri.npy", np.zeros((30, 15), np.float32))
    np.save(root / "subj01" / "roi_masks" / "lh.streams_challenge_space.npy", np.zeros(14))
    with pytest.raises(DataError, match=r"lh\.streams_challenge_space\.npy: shape \(14,\), expected \(15,\)"):
        a23(tmp_path, root).targets("subj01")
    (root / "subj01" / "roi_masks" / "lh.streams_challenge_space.npy").unlink()
    with pytest.raises(DataError, match=r"lh\.streams_challenge_space\.npy: missing \(ROI labels 'streams'"):
        a23(tmp_path, root).targets("subj01")
    (fmri / "rh_training_fmri.npy").unlink()
    assert "rh_training_fmri.npy: missing" in a23(tmp_path, root).unavailable_reason()
