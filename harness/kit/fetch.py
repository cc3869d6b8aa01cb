"""Downloading public datasets: resumable (HTTP Range), checksummed, atomic.

A dataset plugin says *what* to fetch by returning a :class:`FetchPlan` from
``Dataset.fetch_plan()``; this module only knows *how*: stream into ``<file>.part``,
resume a partial file with a Range request (restart if the server ignores it), check
size and sha256, then rename into place, so a killed download never leaves a file
the loaders would trust. Files without a published checksum get their sha256 recorded
in ``<folder>/.harness-fetch.json`` on first download and checked against it later.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from harness.errors import DataError

CHUNK = 1 << 20
RECORD = ".harness-fetch.json"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    #: path relative to the dataset folder
    dest: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class FetchPlan:
    """What to download for one dataset entry, and into which folder."""

    folder: Path
    files: list[RemoteFile] = field(default_factory=list)
    #: terms of use the user must accept before anything is downloaded (None: none)
    terms: str | None = None
    #: shown with the plan (source, licence, what is not fetchable)
    note: str = ""

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def mirrored(url: str, mirror: str | None) -> str:
    """The same path under another origin (a local mirror, or a test server)."""
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + urlparse(url).path.lstrip("/")


def _record(folder: Path) -> dict[str, str]:
    p = folder / RECORD
    if not p.is_file():
        return {}
    try:
        return dict(json.loads(p.read_text()))
    except ValueError as exc:
        raise DataError(f"{p}: corrupt download record ({exc}); delete it to re-record checksums") from exc


def _save_record(folder: Path, rec: dict[str, str]) -> None:
    tmp = folder / f".{RECORD}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True))
    os.replace(tmp, folder / RECORD)


def _expected(rf: RemoteFile, rec: dict[str, str]) -> str | None:
    return rf.sha256 or rec.get(rf.dest)


Progress = Callable[[str, int, int | None], None]


def download(rf: RemoteFile, folder: Path, *, mirror: str | None = None, timeout: float = 60.0,
             progress: Progress | None = None) -> str:
    """Fetch one file into ``folder/rf.dest``; returns 'present', 'downloaded' or 'resumed'."""
    url = mirrored(rf.url, mirror)
    if urlparse(url).scheme not in ("http", "https"):
        raise DataError(f"{url}: only http(s) downloads are supported")
    final = folder / rf.dest
    final.parent.mkdir(parents=True, exist_ok=True)
    rec = _record(folder)
    want = _expected(rf, rec)
    if final.is_file():
        if want is None or sha256_file(final) == want:
            if want is None:
                rec[rf.dest] = sha256_file(final)
                _save_record(folder, rec)
            return "present"
        raise DataError(f"{final}: exists but its sha256 differs from the expected {want}; move it away to re-download")
    part = final.with_name(final.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "harness-fetch/1"}
    if start:
        headers["Range"] = f"bytes={start}-"
    status = "resumed" if start else "downloaded"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is already complete
            resp = None
        else:
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)}); rerun to resume") from exc
    if resp is not None:
        with resp:
            if start and resp.status == 206:
                crange = resp.headers.get("Content-Range", "")
                if not crange.startswith(f"bytes {start}-"):
                    raise DataError(f"{url}: server answered range {crange!r} to a request from byte {start}")
                mode = "ab"
            else:  # 200: the server ignored Range, start over
                mode, start, status = "wb", 0, "downloaded"
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length is not None else rf.size
            done = start
            try:
                with part.open(mode) as fh:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        fh.write(block)
                        done += len(block)
                        if progress:
                            progress(rf.dest, done, total)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                raise DataError(f"{url}: download interrupted at {done} bytes ({exc}); rerun to resume") from exc
            if length is not None and total is not None and done < total:
                raise DataError(f"{url}: download interrupted at {done} of {total} bytes; rerun to resume")
    size = part.stat().st_size
    if rf.size is not None and size != rf.size:
        if size > rf.size:
            part.unlink()
        raise DataError(f"{url}: got {size} bytes, expected {rf.size}" + ("; rerun to resume" if size < rf.size else ""))
    got = sha256_file(part)
    if want is not None and got != want:
        part.unlink()
        raise DataError(f"{url}: sha256 {got} does not match the expected {want}; the partial file was removed")
    os.replace(part, final)
    if want is None:
        rec = _record(folder)
        rec[rf.dest] = got
        _save_record(folder, rec)
    return status


def fetch(plan: FetchPlan, *, mirror: str | None = None, progress: Progress | None = None,
          on_file: Callable[[RemoteFile, str], None] | None = None) -> dict[str, int]:
    """Every file of ``plan``; a failure stops the fetch (what finished stays, a rerun resumes)."""
    counts = {"present": 0, "downloaded": 0, "resumed": 0}
    plan.folder.mkdir(parents=True, exist_ok=True)
    for rf in plan.files:
        status = download(rf, plan.folder, mirror=mirror, progress=progress)
        counts[status] += 1
        if on_file:
            on_file(rf, status)
    return counts
