"""Content-addressed on-disk token cache, memory-mapped back.

The key hashes everything that changes the numbers: weights digest, preprocessing,
layer list, stimulus bytes, precision, token grid cap and the extractor version.
Entries are written into a temporary folder and renamed into place, so a killed
extraction never leaves a half entry that a later run would trust, and two workers
filling the same key on a shared file system both succeed: one rename wins, the other
drops its identical copy. Each file's size and checksum are recorded while it is written
and checked before the entry is trusted (see :mod:`harness.cache_integrity`).
"""

from __future__ import annotations

import contextlib
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

from harness import cache_integrity as integrity

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

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Each data file's recorded ``size`` and checksum (written with the entry)."""
        return dict(self.meta.get("files") or {})

    def trusted(self) -> bool:
        """Verify the checksums unless no file changed since they were last verified; a damaged entry
        is quarantined (with a warning naming it) and ``False`` returned."""
        names = [*self.files, "meta.json"]
        try:
            if integrity.stamped(self.path, names):
                return True
        except OSError:
            pass
        problem = integrity.checksum_problem(self.path, self.files)
        if problem:
            integrity.quarantine(self.path, problem)
            return False
        with contextlib.suppress(OSError):  # a read-only cache verifies again next time, nothing worse
            integrity.write_stamp(self.path, names)
        return True


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
        self.path = path
        self.checksum = integrity.StreamedChecksum()
        with open(path, "rb") as fh:
            self.checksum.update(0, fh.read(self.offset))  # the .npy header open_memmap wrote
        self.fd: int | None = os.open(path, os.O_WRONLY)

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        if rows.shape[1:] != self.shape[1:] or start + len(rows) > self.shape[0]:
            raise ValueError(f"rows {start}:{start + len(rows)} of shape {rows.shape[1:]} do not fit {self.shape}")
        view = memoryview(np.ascontiguousarray(rows, dtype=self.dtype)).cast("B")
        pos = self.offset + start * self.row_bytes
        self.checksum.update(pos, view)
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
        """The entry if present and whole (every file at its recorded size); a damaged entry is
        quarantined with a warning and reads as a miss, so the caller extracts it again."""
        path = self.root / key
        if not path.is_dir():
            return None
        store, problem = _load(path)
        if problem:
            integrity.quarantine(path, problem)
            return None
        return store

    def open(self, key: str) -> TokenStore | None:
        """:meth:`get`, plus the checksums when a file changed since they were last verified: what a
        job reads its tokens through before a result is computed from them."""
        store = self.get(key)
        return store if store is not None and store.trusted() else None

    def scan(self) -> list[tuple[str, TokenStore | None, str | None]]:
        """Every entry as ``(key, store, problem)`` without touching it (for ``cache ls``)."""
        if not self.root.is_dir():
            return []
        out: list[tuple[str, TokenStore | None, str | None]] = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                store, problem = _load(p)
                out.append((p.name, store, problem))
        return out

    def verify(self, key: str | None = None) -> list[tuple[str, str | None]]:
        """Full checksum of every entry (or those whose key starts with ``key``); damaged ones are
        quarantined. Returns ``(key, problem or None)`` per entry."""
        self.clean_stale()
        results = []
        for k, store, problem in self.scan():
            if key is not None and not k.startswith(key):
                continue
            if store is not None:
                problem = integrity.checksum_problem(store.path, store.files)
            if problem:
                integrity.quarantine(self.root / k, problem)
            else:
                assert store is not None
                integrity.write_stamp(store.path, [*store.files, "meta.json"])
            results.append((k, problem))
        return results

    def clean_stale(self) -> int:
        """Remove temporary folders of extractions whose process died; returns how many."""
        return len(integrity.clean_stale(self.root))

    @contextmanager
    def writer(self, key: str, layers: tuple[str, ...], n: int, meta: dict[str, Any], dtype: str = "float16") -> Iterator[_Writer]:
        """``dtype`` is the requested storage dtype; ``meta["dtypes"]`` records what each layer was stored as."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        tmp = self.root / integrity.tmp_name(key)
        tmp.mkdir()
        w = _Writer(tmp, layers, n, np.dtype(dtype))
        try:
            yield w
            for arr in (*w.local.values(), *w.glob.values()):
                arr.flush()
            shapes = {layer: list(w.local[layer].shape[1:]) for layer in layers}
            dtypes = {layer: w.local[layer].dtype.name for layer in layers}
            files = {f.path.name: f.checksum.record(f.path) for f in (*w.local.values(), *w.glob.values())}
            full = {**meta, "layers": list(layers), "n": n, "dtype": dtype, "dtypes": dtypes, "shapes": shapes,
                    "files": dict(sorted(files.items())), "checksum": integrity.CHECKSUM, "created": time.time()}
            (tmp / "meta.json").write_text(json.dumps(full, indent=1, default=str))
            integrity.write_stamp(tmp, [*files, "meta.json"])  # verified as written
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
        """Whole entries (damaged ones are listed by :meth:`scan`)."""
        return [s for _, s, problem in self.scan() if s is not None and problem is None]

    def size_bytes(self, store: TokenStore) -> int:
        return sum(f.stat().st_size for f in store.path.iterdir() if f.is_file())

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


def _load(path: Path) -> tuple[TokenStore | None, str | None]:
    """An entry's metadata and whether its files are all there at their recorded sizes."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not isinstance(meta, dict) or "layers" not in meta or "n" not in meta:
            raise ValueError("not an entry's metadata")
    except OSError as exc:
        return None, f"meta.json unreadable ({exc.strerror or exc})"
    except ValueError as exc:
        return None, f"meta.json is damaged ({str(exc).splitlines()[0]})"
    store = TokenStore(path=path, meta=meta)
    if not store.files:
        return store, "no size/checksum records (written by an older harness)"
    return store, integrity.size_problem(path, store.files)
