"""Content-addressed on-disk token cache, memory-mapped back.

The key hashes everything that changes the numbers: weights digest, preprocessing,
layer list, stimulus bytes, precision, token grid cap and the extractor version.
Entries are written into a temporary folder and renamed into place, so a killed
extraction never leaves a half entry that a later run would trust, and two workers
filling the same key on a shared file system both succeed: one rename wins, the other
drops its identical copy.
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
EXTRACTOR_VERSION = "2"  # 2: per-layer storage dtype (float16 only where its range fits)


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


class _NpyRows:
    """An ``.npy`` file filled block of rows by block of rows with positional writes.

    Not a memmap: pages written through a mapping stay in the writer's resident set until the
    mapping closes, so a writer's memory would grow with the number of stimuli (3.6 GB for
    1 000 images through a ViT-B). ``os.pwrite`` leaves them to the kernel's page cache.
    """

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # header + full-size (sparse) file
        self.offset, self.shape, self.dtype = int(mm.offset), shape, dtype
        del mm  # nothing was touched through the mapping
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.fd: int | None = os.open(path, os.O_WRONLY)

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.shape[1:] or start + len(rows) > self.shape[0]:
            raise ValueError(f"rows {start}:{start + len(rows)} of shape {rows.shape[1:]} do not fit {self.shape}")
        view = memoryview(np.ascontiguousarray(rows, dtype=self.dtype)).cast("B")
        pos = self.offset + start * self.row_bytes
        while view:
            done = os.pwrite(self.fd, view, pos)  # type: ignore[arg-type]
            view, pos = view[done:], pos + done

    def flush(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Writer:
    def __init__(self, tmp: Path, layers: tuple[str, ...], n: int, dtype: np.dtype) -> None:
        self.tmp, self.layers, self.n, self.dtype = tmp, layers, n, dtype
        self.local: dict[str, _NpyRows] = {}
        self.glob: dict[str, _NpyRows] = {}
        self.written = 0

    def write(self, start: int, layer: str, local: np.ndarray, glob: np.ndarray) -> None:
        """Rows ``start:start+len(local)`` of one layer; the first write fixes the layer's stored dtype
        (the arrays' own dtype), so a layer may be kept in float32 where float16 would lose it."""
        if layer not in self.local:
            i = self.layers.index(layer)
            self.local[layer] = _NpyRows(self.tmp / f"{i:03d}_local.npy", local.dtype, (self.n, *local.shape[1:]))
            self.glob[layer] = _NpyRows(self.tmp / f"{i:03d}_global.npy", glob.dtype, (self.n, *glob.shape[1:]))
        self.local[layer].write_rows(start, local)
        self.glob[layer].write_rows(start, glob)

    def close(self) -> None:
        for f in (*self.local.values(), *self.glob.values()):
            f.flush()


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
        """``dtype`` is the requested storage dtype; ``meta["dtypes"]`` records what each layer was stored as."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{key}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        w = _Writer(tmp, layers, n, np.dtype(dtype))
        try:
            yield w
            for arr in (*w.local.values(), *w.glob.values()):
                arr.flush()
            shapes = {layer: list(w.local[layer].shape[1:]) for layer in layers}
            dtypes = {layer: w.local[layer].dtype.name for layer in layers}
            full = {**meta, "layers": list(layers), "n": n, "dtype": dtype, "dtypes": dtypes, "shapes": shapes,
                    "created": time.time()}
            (tmp / "meta.json").write_text(json.dumps(full, indent=1, default=str))
            final = self.root / key
            try:
                os.rename(tmp, final)  # atomic; fails if another process (worker) put the key there first
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(tmp)  # lost the race: the winner's entry has identical content by construction
        except BaseException:
            w.close()
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
