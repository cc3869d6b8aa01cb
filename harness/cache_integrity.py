"""What each cache file must be, and how to check it: sizes always, checksums when it matters.

Used by both content-addressed caches: token entries (``<cache>/tokens``) and decoded-stimulus
entries (``<cache>/decoded``, the uint8 pixels every backbone with one preprocessing recipe reads).

A cache entry is trusted for what it says, so damage must be caught before a number is computed from
it: a same-size overwrite would otherwise change a score silently, a truncated ``.npy`` would fail
every rerun with a bare ``mmap`` error. Each entry's ``meta.json`` records every file's size and xxh3
checksum, computed while the file is written (no second read). Opening an entry compares sizes
(a ``stat`` per file); the checksums are compared by ``harness cache verify`` and whenever an entry
is used whose files changed since they were last verified (``verified.json`` holds the size and
modification time each file had then, so an untouched entry costs no read).

xxh3-128 rather than hashlib's blake2b: same job (catch accidental damage, not forgery), 11-25x the
throughput on this machine (``benchmarks/bench_checksum.py``), so ``cache verify`` over gigabytes takes
seconds rather than minutes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import xxhash

from harness import pids

log = logging.getLogger("harness.cache")

CHECKSUM = "xxh3_128"
STAMP = "verified.json"
QUARANTINE = ".quarantine"
_CHUNK = 8 << 20
_TMP = re.compile(r"^\.(?P<key>[^.]+)\.tmp-(?P<pid>\d+)-(?P<ns>\d+)(?:-(?P<host>.+))?$")


def file_checksum(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class StreamedChecksum:
    """The checksum of a file fed in order as it is written; falls back to reading the file back
    when the writes were not one contiguous run from offset 0 to the end."""

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()
        self._pos = 0
        self._in_order = True

    def update(self, pos: int, data: bytes | memoryview) -> None:
        if pos != self._pos:
            self._in_order = False
        if self._in_order:
            self._h.update(data)
            self._pos += len(data)

    def record(self, path: Path) -> dict[str, Any]:
        size = path.stat().st_size
        digest = self._h.hexdigest() if self._in_order and self._pos == size else file_checksum(path)
        return {"size": size, CHECKSUM: digest}


def size_problem(entry: Path, files: dict[str, dict[str, Any]]) -> str | None:
    """Every recorded file present at its recorded size (cheap: one ``stat`` each)."""
    for name, rec in files.items():
        try:
            size = (entry / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != rec["size"]:
            return f"{name} is {size} bytes, {rec['size']} were written (truncated or replaced)"
    return None


def checksum_problem(entry: Path, files: dict[str, dict[str, Any]]) -> str | None:
    problem = size_problem(entry, files)
    if problem:
        return problem
    for name, rec in files.items():
        if file_checksum(entry / name) != rec[CHECKSUM]:
            return f"{name} does not match its checksum (contents changed after it was written)"
    return None


def _fingerprint(entry: Path, names: list[str]) -> dict[str, list[int]]:
    out = {}
    for name in names:
        st = (entry / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def write_stamp(entry: Path, names: list[str]) -> None:
    """Record that the files are verified as they are now (size and modification time)."""
    tmp = entry / f".{STAMP}.{os.getpid()}"
    tmp.write_text(json.dumps(_fingerprint(entry, names)))
    os.replace(tmp, entry / STAMP)


def stamped(entry: Path, names: list[str]) -> bool:
    """Whether no file changed since the last verification (or since it was written)."""
    try:
        return json.loads((entry / STAMP).read_text()) == _fingerprint(entry, names)
    except (OSError, ValueError):
        return False


def quarantine(entry: Path, problem: str) -> Path | None:
    """Move a damaged entry aside (``<cache>/.quarantine/``) with a one-line warning naming it, so the
    next lookup misses and extracts it again. ``harness cache clear`` removes quarantined entries."""
    dest = entry.parent / QUARANTINE / f"{entry.name}-{time.time_ns()}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(entry, dest)
    except FileNotFoundError:  # another process moved it first
        return None
    except OSError:  # e.g. no room for the move: remove it instead; a read-only cache keeps it, untrusted
        shutil.rmtree(entry, ignore_errors=True)
        dest = None
    where = f"quarantined to {dest}" if dest else "could not be moved (read-only cache?)" if entry.exists() else "removed"
    log.warning("cache entry %s: %s; %s, it will be computed again", entry, problem, where)
    return dest


def trusted(entry: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Verify the checksums unless no file changed since they were last verified; a damaged entry
    is quarantined (with a warning naming it) and ``False`` returned."""
    names = [*files, "meta.json"]
    try:
        if stamped(entry, names):
            return True
    except OSError:
        pass
    problem = checksum_problem(entry, files)
    if problem:
        quarantine(entry, problem)
        return False
    with contextlib.suppress(OSError):  # a read-only cache verifies again next time, nothing worse
        write_stamp(entry, names)
    return True


def tmp_name(key: str) -> str:
    """Name of the folder an entry is written into before it is renamed into place."""
    return f".{key}.tmp-{os.getpid()}-{time.monotonic_ns()}-{socket.gethostname()}"


def clean_stale(root: Path) -> list[Path]:
    """Remove temporary folders left by extractions whose process is gone (``kill -9``, power loss).

    Only folders written on this host are judged (a PID means nothing on another machine sharing the
    cache); folders without a host name are from this host (the format before host names were added).
    """
    if not root.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for p in root.iterdir():
        m = _TMP.match(p.name)
        if not m or (m["host"] not in (None, host)) or pids.alive(int(m["pid"])):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    if removed:
        log.info("cache %s: removed %d temporary folder(s) of dead writers", root, len(removed))
    return removed
