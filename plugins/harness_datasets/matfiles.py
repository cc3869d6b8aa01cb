"""Reading MATLAB files of either generation with one call, in MATLAB's own axis order.

v7.3 files are HDF5 (h5py); HDF5 stores arrays column-major, so h5py sees the axes
reversed and we transpose them back. Older files (v5) go through scipy.io. Every
error names the file and what was expected in it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import DataError


def is_hdf5(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n" or _hdf5_at_512(fh)


def _hdf5_at_512(fh) -> bool:
    fh.seek(512)
    return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")


def read_mat_arrays(path: Path, keys: tuple[str, ...], what: str = "MATLAB file", optional: bool = False) -> dict[str, np.ndarray]:
    """Numeric variables ``keys`` in MATLAB axis order; a missing key is an error unless ``optional``."""
    _require(path, what)
    out: dict[str, np.ndarray] = {}
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                found = sorted(f.keys())
                for k in keys:
                    if k in f and isinstance(f[k], h5py.Dataset):
                        a = np.asarray(f[k])
                        out[k] = a.transpose(tuple(range(a.ndim))[::-1])
        else:
            from scipy.io import loadmat

            m = loadmat(str(path), variable_names=list(keys))
            found = sorted(k for k in m if not k.startswith("__"))
            out = {k: np.asarray(m[k]) for k in keys if k in m}
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc}); expected {what}") from exc
    missing = [k for k in keys if k not in out]
    if missing and not optional:
        raise DataError(f"{path}: no variable(s) {missing} (found {found}); expected {what}")
    for k, a in out.items():
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{path}: variable {k!r} is {a.dtype}, not numeric; expected {what}")
    return out


def _h5_string(f, ds) -> str:
    a = np.asarray(ds)
    if a.dtype.kind in "SU":
        return a.astype(str).item() if a.size == 1 else "".join(a.astype(str).ravel())
    return "".join(chr(int(c)) for c in a.ravel() if int(c))  # MATLAB char arrays are uint16 codes


def _h5_image(ds) -> np.ndarray:
    a = np.asarray(ds)
    return a.transpose(tuple(range(a.ndim))[::-1])  # back to H × W × 3


def read_visual_stimuli(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """``visual_stimuli`` struct (fields ``names``, ``pixels``) of the Algonauts ``*images.mat``.

    Accepts the v5 struct array (1×N, one image per element), a v5 scalar struct of cell
    arrays, and the v7.3 layout where each field is an N-long array of object references.
    """
    what = "struct 'visual_stimuli' with fields names and pixels (Algonauts *images.mat)"
    _require(path, what)
    names: list[str] = []
    pixels: list[np.ndarray] = []
    try:
        if is_hdf5(path):
            import h5py

            with h5py.File(path, "r") as f:
                if "visual_stimuli" not in f:
                    raise DataError(f"{path}: no 'visual_stimuli' (found {sorted(f.keys())}); expected {what}")
                g = f["visual_stimuli"]
                if not isinstance(g, h5py.Group) or "names" not in g or "pixels" not in g:
                    raise DataError(f"{path}: 'visual_stimuli' lacks fields names/pixels; expected {what}")
                for ref in np.asarray(g["names"]).ravel():
                    names.append(_h5_string(f, f[ref]))
                for ref in np.asarray(g["pixels"]).ravel():
                    pixels.append(_h5_image(f[ref]))
        else:
            from scipy.io import loadmat

            m = loadmat(str(path), variable_names=["visual_stimuli"])
            if "visual_stimuli" not in m:
                raise DataError(f"{path}: no 'visual_stimuli'; expected {what}")
            vs = m["visual_stimuli"]
            if vs.dtype.names is None or not {"names", "pixels"} <= set(vs.dtype.names):
                raise DataError(f"{path}: 'visual_stimuli' lacks fields names/pixels; expected {what}")
            if vs.size == 1 and np.asarray(vs["pixels"].item()).dtype == object:  # scalar struct of cells
                names = [str(np.asarray(x).squeeze()) for x in np.asarray(vs["names"].item()).ravel()]
                pixels = [np.asarray(x) for x in np.asarray(vs["pixels"].item()).ravel()]
            else:
                names = [str(np.asarray(x).squeeze()) for x in vs["names"].ravel()]
                pixels = [np.asarray(x) for x in vs["pixels"].ravel()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc
    if len(names) != len(pixels):
        raise DataError(f"{path}: {len(names)} names but {len(pixels)} images in visual_stimuli")
    for nm, px in zip(names, pixels, strict=True):
        if px.ndim != 3 or px.shape[-1] != 3:
            raise DataError(f"{path}: image {nm!r} has shape {px.shape}, expected H×W×3")
    return names, pixels
