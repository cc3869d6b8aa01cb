"""Where a dataset's files live: one rule for every loader, so every error reads the same."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import DataError

if TYPE_CHECKING:
    from harness.contracts import BuildContext


def data_folder(ctx: BuildContext, explicit: str | None, subdir: str, layout: str) -> Path:
    """``args.root`` when given, else ``$HARNESS_DATA_ROOT/<subdir>``; one clear error when neither is set."""
    if explicit:
        return Path(explicit).expanduser()
    dr = ctx.settings.data_root
    if dr is None:
        raise DataError(f"dataset {ctx.entry.name!r}: HARNESS_DATA_ROOT is not set "
                        f"(expected $HARNESS_DATA_ROOT/{subdir} with {layout})")
    return Path(dr) / subdir
