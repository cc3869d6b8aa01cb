"""Entry point of the stage-aggregation head and its registry entries (the referee's controls)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_aggregation.stage_aggregation_head import StageAggregationHead


@hookimpl
def harness_plugins() -> list[type]:
    return [StageAggregationHead]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
