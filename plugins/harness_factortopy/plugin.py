"""Entry point of the FactorTopy plugin: the head and its registry entries (ablations included)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_factortopy.specs import FACTORTOPY


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(FACTORTOPY, "harness_factortopy.factortopy_head:FactorTopyHead")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
