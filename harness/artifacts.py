"""Content-addressed safetensors files that heads save beside their job (e.g. a fitted model).

Why: analyses of a fitted head (FactorTopy's channel clustering and channel images, Yang, Gee &
Shi 2024) need its parameters after the run, and refitting would not give the same model the
scores came from. Files are named by the sha256 of their bytes, so a rerun that reproduces the
model reuses the file and two jobs never overwrite each other's. Only safetensors: loading
never executes code. The runner links each file to its job in the ``artifacts`` table.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import DataError

if TYPE_CHECKING:
    import torch

MODELS_DIR = "models"


def save_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], folder: Path) -> Path:
    """Write ``folder/<sha256>.safetensors`` (atomically; kept if it exists) and return its path.

    ``metadata`` values are JSON-encoded (safetensors metadata holds strings only).
    """
    from safetensors.torch import save

    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={k: json.dumps(v, default=str) for k, v in metadata.items()})
    digest = hashlib.sha256(blob).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}.safetensors"
    if not path.is_file():
        tmp = folder / f".{digest}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return path


def load_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (float32 numpy) and the decoded metadata of a file written by :func:`save_tensors`.

    The content hash is checked, so a truncated or edited file fails with its path named.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read saved model ({exc.strerror or exc})") from exc
    if hashlib.sha256(blob).hexdigest() != path.stem:
        raise DataError(f"{path}: content does not match its sha256 name (corrupt or edited file)")
    try:
        arrays = load(blob)
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            raw_meta = f.metadata() or {}
    except (SafetensorError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    return arrays, {k: json.loads(v) for k, v in raw_meta.items()}
