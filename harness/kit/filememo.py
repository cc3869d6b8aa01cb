"""A value computed from files, remembered while those files are untouched.

Why: ``harness plan`` needs every dataset's content digest (it is part of each job's key), and some
digests read and decode tens of megabytes (a MATLAB file of stimuli) on every call. The digest is a
function of the files' bytes, so it is stored under a key made of each file's identity and change
stamps — path, size, inode, modification and status-change times in nanoseconds, the fields git's
index trusts — plus a ``salt`` naming what was computed (plugin, version, arguments). Writing a file
changes its status-change time, which no tool can set back, so an edited file is never answered from
the memo; a missing file is not memoised (the computation raises its own error).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path


def files_key(files: Sequence[Path], salt: str) -> str | None:
    """The memo key of ``files`` as they are now, or None when one cannot be stat'ed."""
    stamps: list[object] = [salt]
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return None
        stamps.append([str(Path(f).resolve()), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns])
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()


def memo_by_files(cache_dir: Path | None, files: Sequence[Path], salt: str, compute: Callable[[], str]) -> str:
    """``compute()`` (a string such as a digest), remembered under ``cache_dir/file-memo`` for these files' state."""
    key = files_key(files, salt) if cache_dir is not None else None
    if key is None or cache_dir is None:
        return compute()
    path = cache_dir / "file-memo" / key[:2] / key
    try:
        return path.read_text()
    except OSError:
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}")
        tmp.write_text(value)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the computation next time
    return value
