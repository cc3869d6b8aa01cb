"""Entry point of the FactorTopy plugin: the head and its registry entries (ablations included)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_factortopy.factortopy_head import FactorTopyHead


@hookimpl
def harness_plugins() -> list[type]:
    return [FactorTopyHead]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
