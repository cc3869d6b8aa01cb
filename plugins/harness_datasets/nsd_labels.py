"""NSD's ROI label vocabularies, shared by the NSD and Algonauts 2023 loaders.

The tables equal NSD's ``<name>.mgz.ctab`` files (and the Algonauts 2023
``mapping_<name>.npy`` dicts); a ctab or mapping file next to the data wins over them.
Levels give the shallow → deep order used by hierarchy metrics; category-selective
ROIs (floc-*) have no level.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.errors import DataError

LABELS: dict[str, dict[int, str]] = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal", 5: "ventral", 6: "lateral", 7: "parietal"},
    "nsdgeneral": {1: "nsdgeneral"},
}
LEVELS: dict[str, float] = {
    "V1v": 0, "V1d": 0, "V2v": 1, "V2d": 1, "V3v": 2, "V3d": 2, "hV4": 3,
    "early": 0, "midventral": 1, "midlateral": 1, "midparietal": 1, "ventral": 2, "lateral": 2, "parietal": 2,
}
UNLABELLED = "other"


def read_ctab(path: Path) -> dict[int, str]:
    """``index name [r g b a]`` per line (FreeSurfer colour table); index 0 ('Unknown') dropped."""
    out: dict[int, str] = {}
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            idx = int(parts[0])
        except ValueError:
            raise DataError(f"{path}:{ln}: expected '<index> <name>', got {line!r}") from None
        if len(parts) < 2:
            raise DataError(f"{path}:{ln}: label {idx} has no name")
        if idx != 0:
            out[idx] = parts[1]
    return out


class _SafeUnpickler(pickle.Unpickler):
    """Only what ``np.save`` of a dict of ints/strings needs; anything else is refused."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "dict")})

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_mapping_npy(path: Path) -> dict[int, str]:
    """Algonauts 2023 ``mapping_<name>.npy`` (a pickled dict saved by np.save), read without running code."""
    raw = path.read_bytes()
    try:
        buf = io.BytesIO(raw)
        fmt = np.lib.format
        version = fmt.read_magic(buf)
        header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if header is None:
            raise DataError(f"{path}: unsupported .npy format version {version}")
        _, _, dtype = header(buf)
        if dtype != np.dtype(object):
            raise DataError(f"{path}: expected a pickled dict, found a {dtype} array")
        obj = _SafeUnpickler(buf).load()
    except (pickle.UnpicklingError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a plain label mapping ({exc})") from exc
    if isinstance(obj, np.ndarray):
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict label → name, got {type(obj).__name__}")
    out: dict[int, str] = {}
    for k, v in obj.items():  # Algonauts stores {index: name}; tolerate the inverse too
        if isinstance(k, str) and not isinstance(v, str):
            k, v = v, k
        if int(k) != 0:
            out[int(k)] = str(v)
    return out


def label_names(values: np.ndarray, table: dict[int, str], source: str) -> np.ndarray:
    """Integer labels → names (0 and negatives → ``other``); unknown positive labels are an error."""
    v = np.asarray(values).astype(np.int64)
    unknown = sorted(set(np.unique(v[v > 0]).tolist()) - set(table))
    if unknown:
        raise DataError(f"{source}: label values {unknown[:5]} have no name in its colour table")
    lut = np.array([UNLABELLED] + [table.get(i, UNLABELLED) for i in range(1, max(table, default=0) + 1)], dtype=object)
    return np.where(v > 0, lut[np.clip(v, 0, len(lut) - 1)], UNLABELLED).astype(str)


def surface_coords(path: Path, n_vertices: int) -> np.ndarray:
    """Vertex coordinates (mm) of a FreeSurfer surface, checked against the data's vertex count."""
    try:
        from nibabel.freesurfer import read_geometry
    except ImportError:
        from harness.errors import PluginMissingError

        raise PluginMissingError(f"{path}: reading FreeSurfer surfaces needs nibabel: pip install 'harness[data]'") from None
    if not path.is_file():
        raise DataError(f"{path}: missing FreeSurfer surface (needed for vertex coordinates)")
    try:
        coords, _faces = read_geometry(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable FreeSurfer surface ({exc})") from exc
    if len(coords) != n_vertices:
        raise DataError(f"{path}: {len(coords)} vertices but the data has {n_vertices}")
    return np.asarray(coords, dtype=np.float64)
