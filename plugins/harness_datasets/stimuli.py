"""Stimuli from the containers real datasets ship: image folders, zips, in-file arrays, HDF5 bricks.

Every variant digests the image *content* (so the token cache misses when an image
changes) and names the offending image when one cannot be decoded.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from harness.contracts import Stimuli
from harness.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_files(folder: Path, layout: str) -> list[Path]:
    """Image files of ``folder`` sorted by name (the order every layout here relies on)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: missing image folder (expected {layout})")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) (expected {layout})")
    return paths


def stimuli_from_arrays(images: Sequence[np.ndarray], ids: Sequence[str], source: str) -> Stimuli:
    """H×W×3 uint8 arrays of possibly different sizes (e.g. images stored in a .mat file)."""
    h = hashlib.sha256()
    arrs = []
    for name, im in zip(ids, images, strict=True):
        a = np.ascontiguousarray(im)
        if a.ndim != 3 or a.shape[-1] != 3:
            raise DataError(f"{source}: image {name!r} has shape {a.shape}, expected H×W×3")
        if a.dtype != np.uint8:
            if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) <= 1.0:
                a = np.round(a * 255)
            a = np.clip(a, 0, 255).astype(np.uint8)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
        arrs.append(a)

    def load(i: int) -> Image.Image:
        from PIL import Image

        return Image.fromarray(arrs[i])

    return Stimuli(ids=tuple(ids), load=load, digest=h.hexdigest())


def zip_members(path: Path) -> list[str]:
    """Image members of a zip sorted by basename (folder prefixes and directory entries ignored)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if not n.endswith("/") and PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable zip of images ({exc})") from exc
    if not names:
        raise DataError(f"{path}: no images inside the zip")
    bases = [PurePosixPath(n).name for n in names]
    if len(set(bases)) != len(bases):
        raise DataError(f"{path}: duplicate image basenames inside the zip")
    return [n for _, n in sorted(zip(bases, names, strict=True))]


def stimuli_from_zip(path: Path) -> Stimuli:
    """Images inside a zip, in basename order; decoded lazily, digested over their bytes."""
    members = zip_members(path)
    h = hashlib.sha256()
    blobs: list[bytes] = []
    with zipfile.ZipFile(path) as z:
        for m in members:
            try:
                b = z.read(m)
            except (OSError, zipfile.BadZipFile, KeyError) as exc:
                raise DataError(f"{path}!{m}: cannot read image from the zip ({exc})") from exc
            h.update(PurePosixPath(m).name.encode())
            h.update(b)
            blobs.append(b)

    def load(i: int) -> Image.Image:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(blobs[i])) as im:
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{path}!{members[i]}: corrupt or unreadable image ({exc})") from exc

    return Stimuli(ids=tuple(PurePosixPath(m).name for m in members), load=load, digest=h.hexdigest())


def stimuli_from_hdf5(path: Path, dataset: str, indices: np.ndarray, ids: Sequence[str]) -> Stimuli:
    """Rows ``indices`` of an N×H×W×3 uint8 HDF5 brick (NSD's ``imgBrick``), read one at a time."""
    import h5py

    idx = np.asarray(indices, dtype=np.int64)
    h = hashlib.sha256()
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise DataError(f"{path}: no dataset {dataset!r} (found {sorted(f.keys())})")
            ds = f[dataset]
            if ds.ndim != 4 or ds.shape[-1] != 3:
                raise DataError(f"{path}: {dataset!r} has shape {ds.shape}, expected N×H×W×3")
            if len(idx) and (idx.min() < 0 or idx.max() >= ds.shape[0]):
                raise DataError(f"{path}: image index out of range for {dataset!r} with {ds.shape[0]} images")
            h.update(f"{path.name}:{dataset}:{ds.shape}".encode())
            for i in idx:
                h.update(np.ascontiguousarray(ds[int(i)]).tobytes())
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 image brick ({exc})") from exc

    def load(i: int) -> Image.Image:
        from PIL import Image

        with h5py.File(path, "r") as f:
            return Image.fromarray(np.asarray(f[dataset][int(idx[i])], dtype=np.uint8))

    return Stimuli(ids=tuple(ids), load=load, digest=h.hexdigest())


def files_digest(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of small target files (RDM .mat/.npz), in the order given."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
