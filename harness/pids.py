"""Whether a process id is alive on this host: how leftovers of killed writers are told from live ones."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """``kill(pid, 0)`` delivers nothing and only checks: gone → False; someone else's process → True."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
