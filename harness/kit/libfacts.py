"""Answers a model library gives about its own registry, remembered per installed library version.

Why: ``harness plan`` and ``harness weights status`` must say which weight file an entry needs (timm's
pretrained cfg, open_clip's download table …) without importing the library, whose import alone takes
seconds (open_clip > 10 s cold; every one of them imports torch). Such an answer is a pure function of
the library's code, so it is stored keyed by the distribution's installed version (read from its
metadata, which imports nothing) and the question; another version is another file, so an upgrade never
reads a stale answer. Only names and numbers are stored, never whether a file exists: callers check the
file system every time.

An editable (development) install of a library keeps its version while its code changes; remove
``<HARNESS_HOME>/cache/library-facts`` after editing such a library's registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: bump when the meaning of stored answers changes (a question's answer gains a field …)
FORMAT = 1
_memo: dict[Path, dict[str, Any]] = {}


@lru_cache(maxsize=64)
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` from its metadata (no import), or None when it is not installed.

    Once per process: parsing a METADATA file costs ~1 ms and planning asks per entry."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def facts_file(cache_dir: Path, distribution: str, version: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._+-" else "_" for c in f"{distribution}-{version}")
    return cache_dir / "library-facts" / f"{safe}.v{FORMAT}.json"


def _read(path: Path) -> dict[str, Any]:
    if path not in _memo:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        _memo[path] = data if isinstance(data, dict) else {}
    return _memo[path]


def _write(path: Path, answers: dict[str, Any]) -> None:
    """Merge with what another process may have written meanwhile, then replace atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        on_disk: Any = {}
        with contextlib.suppress(OSError, ValueError):
            on_disk = json.loads(path.read_text())
        merged = {**(on_disk if isinstance(on_disk, dict) else {}), **answers}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(merged, f, sort_keys=True)
        os.replace(tmp, path)
        _memo[path] = merged
    except OSError:
        pass  # a read-only home only costs the library import next time


def library_fact(distribution: str, question: str, answer: Callable[[], Any], cache_dir: Path | None) -> Any:
    """``answer()`` (which may import the library), remembered for this installed version of ``distribution``.

    ``answer`` must return JSON data (tuples come back as lists). Without a ``cache_dir`` or an
    installed distribution the question is answered live every time.
    """
    version = installed_version(distribution)
    if cache_dir is None or version is None:
        return answer()
    path = facts_file(cache_dir, distribution, version)
    known = _read(path)
    if question in known:
        return known[question]
    value = json.loads(json.dumps(answer()))  # what a later read returns, so the first call answers the same
    _write(path, {**known, question: value})
    return value
