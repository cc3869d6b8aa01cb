"""Entry point of the first-party heads."""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness_heads.ridge_head import RidgeHead
from harness_heads.rsa_head import RSAHead


@hookimpl
def harness_plugins() -> list[type]:
    return [RidgeHead, RSAHead]
