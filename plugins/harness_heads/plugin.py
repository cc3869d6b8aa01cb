"""Entry point of the first-party heads."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_heads.specs import CLASSTOKEN, GNET, PATCHTOKEN, RIDGE, RSA


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [
        LazyPlugin(RIDGE, "harness_heads.ridge_head:RidgeHead"),
        LazyPlugin(RSA, "harness_heads.rsa_head:RSAHead"),
        LazyPlugin(CLASSTOKEN, "harness_heads.token_heads:ClassTokenHead"),
        LazyPlugin(PATCHTOKEN, "harness_heads.token_heads:PatchTokenHead"),
        LazyPlugin(GNET, "harness_heads.gnet_head:GNetHead"),
    ]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
