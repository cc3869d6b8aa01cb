"""One exception family so the CLI can print a single line and pick an exit code.

Every message names the file, entry or field at fault; callers never need a
traceback to know what to fix.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: its ``str`` is the one line the CLI prints."""

    exit_code: int = 2


class RegistryError(HarnessError):
    """registry.yaml (or a plugin-provided entry) is invalid."""


class PluginMissingError(HarnessError):
    """A plugin, or the library it needs, is not installed."""


class WeightsMissingError(HarnessError):
    """Pretrained weights are not available offline."""


class DataError(HarnessError):
    """Brain data or stimuli are missing, corrupt or inconsistent."""


class StoreError(HarnessError):
    """The leaderboard database cannot be opened or written."""

    exit_code = 3


class QueryError(HarnessError):
    """A query passed to ``harness sql`` (or a view filter) is not one valid read-only query: bad input, not
    a database problem."""


class RunLockedError(StoreError):
    """Another run already writes to the same database."""

    exit_code = 4
