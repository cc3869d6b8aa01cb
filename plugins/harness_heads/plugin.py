"""Entry point of the first-party heads."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_heads.gnet_head import GNetHead
from harness_heads.ridge_head import RidgeHead
from harness_heads.rsa_head import RSAHead
from harness_heads.token_heads import ClassTokenHead, PatchTokenHead


@hookimpl
def harness_plugins() -> list[type]:
    return [RidgeHead, RSAHead, ClassTokenHead, PatchTokenHead, GNetHead]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
