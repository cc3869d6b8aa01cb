"""The folder layout: a synthetic brain exported and read back; repeats, ceilings, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from harness_datasets.folder import write_folder
from PIL import Image

from harness.errors import DataError
from tests.helpers import make_factory
from tests.test_datasets_synthetic import syn, tiny_factory


def folder(tmp_path: Path, root: Path, **args: object):
    f = make_factory({"datasets": {"f": {"plugin": "folder", "args": {"root": str(root), **args}}}}, tmp_path)
    return f.dataset("f")


def test_synthetic_brain_round_trips_through_the_folder_layout(tmp_path: Path) -> None:
    f = tiny_factory(tmp_path, {"syn": syn(n_stimuli=200, voxels_per_roi=10, snr=0.5, n_repeats=4, n_subjects=1)})
    src = f.dataset("syn")
    t = src.targets("sub01")
    cols = ["voxel_id", "roi", "x", "y", "z"]
    test_ids = [src.stimuli().ids[i] for i in t.test_idx]
    root = write_folder(tmp_path / "export", src.stimuli(), t.repeats, t.voxels[cols], test_ids)
    ds = folder(tmp_path, root, roi_order=["V1", "V2", "V4", "IT"])
    assert ds.unavailable_reason() is None and ds.subjects() == ["sub01"]
    back = ds.targets("sub01")
    back.validate(len(ds.stimuli()), "folder")
    np.testing.assert_allclose(back.responses, t.responses, atol=1e-6)
    np.testing.assert_array_equal(back.test_idx, t.test_idx)
    pd.testing.assert_frame_equal(back.voxels[cols], t.voxels[cols], check_dtype=False)
    assert back.roi_levels == {"V1": 0.0, "V2": 1.0, "V4": 2.0, "IT": 3.0}
    # the empirical ceilings estimate the planted one
    for method in ("split_half", "ncsnr"):
        nc = folder(tmp_path, root, ceiling=method).targets("sub01").noise_ceiling_r
        assert abs(np.median(nc) - t.noise_ceiling_r[0]) < 0.04, method


def make_folder(root: Path, n: int = 12, n_vox: int = 5, repeats: int = 0, subjects: tuple[str, ...] = ()) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "images" / f"im{i:02d}.png")
    for d in [root / s for s in subjects] or [root]:
        d.mkdir(exist_ok=True)
        shape = (n, repeats, n_vox) if repeats else (n, n_vox)
        np.save(d / "responses.npy", rng.standard_normal(shape))
        pd.DataFrame({"roi": ["V1"] * (n_vox - 2) + ["V4"] * 2, "x": np.arange(n_vox, dtype=float)}).to_csv(d / "voxels.csv", index=False)
    return root


def test_subject_folders_split_file_and_nan_voxels(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", subjects=("s1", "s2"), repeats=3)
    (root / "split.json").write_text(json.dumps({"test": ["im00.png", "im05.png"]}))
    r = np.load(root / "s2" / "responses.npy")
    r[:, :, 1] = np.nan  # a voxel with no data
    r[4, 0, 2] = np.nan  # a missing repeat: not a reason to drop the voxel
    np.save(root / "s2" / "responses.npy", r)
    ds = folder(tmp_path, root)
    assert ds.subjects() == ["s1", "s2"]
    t = ds.targets("s2")
    assert t.n_excluded == 1 and len(t.voxels) == 4 and "v000001" not in set(t.voxels["voxel_id"])
    np.testing.assert_array_equal(t.test_idx, [0, 5])
    np.testing.assert_allclose(t.responses[4, 1], np.nanmean(r[4, :, 2]))
    assert ds.targets("s1").n_excluded == 0


def test_folder_bad_inputs(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f")
    np.save(root / "responses.npy", np.zeros((11, 5)))
    with pytest.raises(DataError, match=r"responses\.npy: 11 rows but 12 images"):
        folder(tmp_path, root).targets("sub01")
    np.save(root / "responses.npy", np.zeros((12, 4)))
    with pytest.raises(DataError, match=r"voxels\.csv: 5 rows but responses\.npy has 4 voxels"):
        folder(tmp_path, root).targets("sub01")
    pd.DataFrame({"area": ["V1"] * 4}).to_csv(root / "voxels.csv", index=False)
    with pytest.raises(DataError, match=r"voxels\.csv: no 'roi' column"):
        folder(tmp_path, root).targets("sub01")
    (root / "voxels.csv").unlink()
    assert f"{root / 'voxels.csv'}: missing" in folder(tmp_path, root).unavailable_reason()
    (root / "split.json").write_text(json.dumps({"test": ["nope.png"]}))
    with pytest.raises(DataError, match=r"split\.json: test images not in"):
        folder(tmp_path, root).split()
    (root / "images" / "im03.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"im03\.png: corrupt or unreadable image"):
        folder(tmp_path, root).stimuli().load(3)
    (root / "responses.npy").unlink()
    assert "responses.npy: missing" in folder(tmp_path, root).unavailable_reason()
