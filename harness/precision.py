"""Which precision extraction runs at: apart from :mod:`harness.extract` because the planner needs the answer
(it is part of the job key) and must not import torch to get it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.contracts import Backbone


def resolve_precision(precision: str, backbone: Backbone, device: str) -> str:
    """``auto``: bf16 autocast on CUDA; on CPU only for families measured faster and accurate (``cpu_bf16``)."""
    if precision != "auto":
        if precision not in ("fp32", "bf16"):
            raise HarnessError(f"extraction precision must be auto, fp32 or bf16, not {precision!r}")
        return precision
    if device.startswith("cuda") or getattr(backbone, "cpu_bf16", False):
        return "bf16"
    return "fp32"
