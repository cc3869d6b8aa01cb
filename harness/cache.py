"""Content-addressed on-disk token cache, memory-mapped back.

The key hashes everything that changes the numbers: weights digest, preprocessing,
layer list, stimulus bytes, precision, token grid cap and the extractor version.
Entries are written into a temporary folder and renamed into place, so a killed
extraction never leaves a half entry that a later run would trust, and two workers
filling the same key on a shared file system both succeed: one rename wins, the other
drops its identical copy. Each file's size and checksum are recorded while it is written
and checked before the entry is trusted (see :mod:`harness.cache_integrity`).

Next to it, :class:`DecodedCache` holds each stimulus set decoded, resized and cropped once per
preprocessing recipe (``N×H×W×3`` uint8, memory-mapped back), because every backbone sharing a recipe
would otherwise repeat the same JPEG decode and resize, which costs as much as a fast net's forward.
Both caches write, check, list and quarantine their entries the same way (:class:`_EntryCache`).
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
from typing import Any, Generic, TypeVar

import numpy as np

from harness import cache_integrity as integrity
from harness.contracts import TokenStore

#: bump when extraction changes numerically (invalidates every entry)
EXTRACTOR_VERSION = "2"  # 2: per-layer storage dtype (float16 only where its range fits)
#: bump when decoding/resizing/cropping changes (invalidates every decoded-stimulus entry, never a token entry)
DECODER_VERSION = "1"


def _key(**parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def token_key(**parts: Any) -> str:
    return _key(extractor=EXTRACTOR_VERSION, **parts)


def decoded_key(stimuli: str, recipe: dict[str, Any]) -> str:
    """Stimulus digest × the decode part of a preprocessing recipe (``Preprocess.decode_recipe``): the
    normalisation is left out on purpose, so backbones differing only in mean/std share one entry."""
    return _key(decoder=DECODER_VERSION, stimuli=stimuli, **recipe)


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


@dataclass(frozen=True)
class DecodedEntry:
    """One decoded stimulus set: ``pixels.npy`` (``N×H×W×3`` uint8, exactly the cropped PIL image each
    backbone with this recipe converts to float) and ``meta.json`` with its size and checksum."""

    path: Path
    meta: dict[str, Any]

    PIXELS = "pixels.npy"

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return dict(self.meta.get("files") or {})

    def pixels(self) -> np.ndarray:
        """Memory-mapped, read-only: a batch slice reads only its own rows."""
        return np.load(self.path / self.PIXELS, mmap_mode="r")

    def trusted(self) -> bool:
        return integrity.trusted(self.path, self.files)


E = TypeVar("E", TokenStore, DecodedEntry)


class _EntryCache(Generic[E]):
    """What both caches share: entries are folders under ``root`` holding ``meta.json`` with each file's
    size and checksum, written in a temporary folder and renamed into place."""

    root: Path

    def _entry(self, path: Path, meta: dict[str, Any]) -> E:
        raise NotImplementedError

    def _load(self, path: Path) -> tuple[E | None, str | None]:
        meta, problem = _load_meta(path)
        if meta is None:
            return None, problem
        try:
            entry = self._entry(path, meta)
        except ValueError as exc:
            return None, f"meta.json is damaged ({exc})"
        if not entry.files:
            return entry, "no size/checksum records (written by an older harness)"
        return entry, integrity.size_problem(path, entry.files)

    def get(self, key: str) -> E | None:
        """The entry if present and whole (every file at its recorded size); a damaged entry is
        quarantined with a warning and reads as a miss, so the caller computes it again."""
        path = self.root / key
        if not path.is_dir():
            return None
        entry, problem = self._load(path)
        if problem:
            integrity.quarantine(path, problem)
            return None
        return entry

    def open(self, key: str) -> E | None:
        """:meth:`get`, plus the checksums when a file changed since they were last verified: what a
        job reads an entry through before a result is computed from it."""
        entry = self.get(key)
        return entry if entry is not None and entry.trusted() else None

    def scan(self) -> list[tuple[str, E | None, str | None]]:
        """Every entry as ``(key, entry, problem)`` without touching it (for ``cache ls``)."""
        if not self.root.is_dir():
            return []
        out: list[tuple[str, E | None, str | None]] = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                entry, problem = self._load(p)
                out.append((p.name, entry, problem))
        return out

    def verify(self, key: str | None = None) -> list[tuple[str, str | None]]:
        """Full checksum of every entry (or those whose key starts with ``key``); damaged ones are
        quarantined. Returns ``(key, problem or None)`` per entry."""
        self.clean_stale()
        results = []
        for k, entry, problem in self.scan():
            if key is not None and not k.startswith(key):
                continue
            if entry is not None:
                problem = integrity.checksum_problem(entry.path, entry.files)
            if problem:
                integrity.quarantine(self.root / k, problem)
            else:
                assert entry is not None
                integrity.write_stamp(entry.path, [*entry.files, "meta.json"])
            results.append((k, problem))
        return results

    def clean_stale(self) -> int:
        """Remove temporary folders of writers whose process died; returns how many."""
        return len(integrity.clean_stale(self.root))

    @contextmanager
    def _staging(self, key: str) -> Iterator[Path]:
        """A fresh temporary folder for entry ``key``, removed if the block fails."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_stale()
        tmp = self.root / integrity.tmp_name(key)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _commit(self, tmp: Path, key: str, files: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        """Write ``meta.json`` (with the files' sizes and checksums) and rename the folder into place."""
        full = {**meta, "files": dict(sorted(files.items())), "checksum": integrity.CHECKSUM, "created": time.time()}
        (tmp / "meta.json").write_text(json.dumps(full, indent=1, default=str))
        integrity.write_stamp(tmp, [*files, "meta.json"])  # verified as written
        final = self.root / key
        try:
            os.rename(tmp, final)  # atomic; fails if another process (worker) put the key there first
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)  # lost the race: the winner's entry has identical content by construction

    def ls(self) -> list[E]:
        """Whole entries (damaged ones are listed by :meth:`scan`)."""
        return [e for _, e, problem in self.scan() if e is not None and problem is None]

    def size_bytes(self, entry: E) -> int:
        return sum(f.stat().st_size for f in entry.path.iterdir() if f.is_file())

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


class DecodedCache(_EntryCache[DecodedEntry]):
    """Stimulus sets decoded once per preprocessing recipe (``<cache>/decoded``), shared by every backbone."""

    def __init__(self, root: Path) -> None:
        self.root = root / "decoded"

    def _entry(self, path: Path, meta: dict[str, Any]) -> DecodedEntry:
        return DecodedEntry(path=path, meta=meta)

    @contextmanager
    def writer(self, key: str, shape: tuple[int, int, int, int], meta: dict[str, Any]) -> Iterator[_NpyRows]:
        """Rows of ``pixels.npy`` (``shape`` = N×H×W×3 uint8) written by position; the entry appears, whole,
        when the block ends, and not at all if it fails."""
        with self._staging(key) as tmp:
            rows = _NpyRows(tmp / DecodedEntry.PIXELS, np.dtype(np.uint8), shape)
            try:
                yield rows
            finally:
                rows.flush()
            files = {rows.path.name: rows.checksum.record(rows.path)}
            self._commit(tmp, key, files, {**meta, "n": shape[0], "shape": list(shape), "dtype": "uint8"})


class TokenCache(_EntryCache[TokenStore]):
    def __init__(self, root: Path) -> None:
        self.root = root / "tokens"
        #: decoded stimuli under the same cache folder, read by every backbone with the same recipe
        self.decoded = DecodedCache(root)

    def _entry(self, path: Path, meta: dict[str, Any]) -> TokenStore:
        if "layers" not in meta:
            raise ValueError("not an entry's metadata")
        return TokenStore(path=path, meta=meta)

    @contextmanager
    def writer(self, key: str, layers: tuple[str, ...], n: int, meta: dict[str, Any], dtype: str = "float16") -> Iterator[_Writer]:
        """``dtype`` is the requested storage dtype; ``meta["dtypes"]`` records what each layer was stored as."""
        with self._staging(key) as tmp:
            w = _Writer(tmp, layers, n, np.dtype(dtype))
            try:
                yield w
            finally:
                w.close()
            shapes = {layer: list(w.local[layer].shape[1:]) for layer in layers}
            dtypes = {layer: w.local[layer].dtype.name for layer in layers}
            files = {f.path.name: f.checksum.record(f.path) for f in (*w.local.values(), *w.glob.values())}
            self._commit(tmp, key, files, {**meta, "layers": list(layers), "n": n, "dtype": dtype, "dtypes": dtypes,
                                           "shapes": shapes})


def _load_meta(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """An entry's ``meta.json``, or the one-line reason it cannot be read."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not isinstance(meta, dict) or "n" not in meta:
            raise ValueError("not an entry's metadata")
    except OSError as exc:
        return None, f"meta.json unreadable ({exc.strerror or exc})"
    except ValueError as exc:
        return None, f"meta.json is damaged ({str(exc).splitlines()[0]})"
    return meta, None
