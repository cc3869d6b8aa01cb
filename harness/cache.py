"""Content-addressed on-disk token cache, memory-mapped back.

The key hashes everything that changes the numbers: weights digest, preprocessing,
layer list, stimulus bytes, precision, token grid cap and the extractor version.
Entries are written into a temporary folder and renamed into place, so a killed
extraction never leaves a half entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: bump when extraction changes numerically (invalidates every entry)
EXTRACTOR_VERSION = "1"


def token_key(**parts: Any) -> str:
    blob = json.dumps({"extractor": EXTRACTOR_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TokenStore:
    """Read-only view of one cache entry; arrays are memory-mapped, never loaded whole."""

    path: Path
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.meta["layers"])

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    def _file(self, layer: str, part: str) -> Path:
        return self.path / f"{self.layers.index(layer):03d}_{part}.npy"

    def local(self, layer: str) -> np.ndarray:
        """``N×C×H×W`` local tokens (memory-mapped, stored dtype)."""
        return np.load(self._file(layer, "local"), mmap_mode="r")

    def global_(self, layer: str) -> np.ndarray:
        """``N×C`` global token (CLS for ViTs, mean-pooled for CNNs)."""
        return np.load(self._file(layer, "global"), mmap_mode="r")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v) for k, v in self.meta["shapes"].items()}


class _Writer:
    def __init__(self, tmp: Path, layers: tuple[str, ...], n: int, dtype: np.dtype) -> None:
        self.tmp, self.layers, self.n, self.dtype = tmp, layers, n, dtype
        self.local: dict[str, np.memmap] = {}
        self.glob: dict[str, np.memmap] = {}
        self.written = 0

    def write(self, start: int, layer: str, local: np.ndarray, glob: np.ndarray) -> None:
        if layer not in self.local:
            i = self.layers.index(layer)
            self.local[layer] = np.lib.format.open_memmap(
                self.tmp / f"{i:03d}_local.npy", mode="w+", dtype=self.dtype, shape=(self.n, *local.shape[1:])
            )
            self.glob[layer] = np.lib.format.open_memmap(
                self.tmp / f"{i:03d}_global.npy", mode="w+", dtype=self.dtype, shape=(self.n, *glob.shape[1:])
            )
        self.local[layer][start : start + len(local)] = local
        self.glob[layer][start : start + len(glob)] = glob


class TokenCache:
    def __init__(self, root: Path) -> None:
        self.root = root / "tokens"

    def get(self, key: str) -> TokenStore | None:
        path = self.root / key
        meta = path / "meta.json"
        if not meta.is_file():
            return None
        return TokenStore(path=path, meta=json.loads(meta.read_text()))

    @contextmanager
    def writer(self, key: str, layers: tuple[str, ...], n: int, meta: dict[str, Any], dtype: str = "float16") -> Iterator[_Writer]:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        w = _Writer(tmp, layers, n, np.dtype(dtype))
        try:
            yield w
            for arr in (*w.local.values(), *w.glob.values()):
                arr.flush()
            shapes = {layer: list(w.local[layer].shape[1:]) for layer in layers}
            full = {**meta, "layers": list(layers), "n": n, "dtype": dtype, "shapes": shapes, "created": time.time()}
            (tmp / "meta.json").write_text(json.dumps(full, indent=1, default=str))
            final = self.root / key
            if final.exists():  # another process finished first: identical content by construction
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def ls(self) -> list[TokenStore]:
        if not self.root.is_dir():
            return []
        stores = [self.get(p.name) for p in sorted(self.root.iterdir()) if not p.name.startswith(".")]
        return [s for s in stores if s is not None]

    def size_bytes(self, store: TokenStore) -> int:
        return sum(f.stat().st_size for f in store.path.iterdir())

    def clear(self, key: str | None = None) -> int:
        """Remove one entry (by key prefix) or everything, including orphaned temporary folders."""
        if not self.root.is_dir():
            return 0
        n = 0
        for p in self.root.iterdir():
            if key is None or p.name.startswith(key):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n
