"""Entry point of the stage-aggregation head and its registry entries (the referee's controls)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_aggregation.specs import STAGE_AGGREGATION


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(STAGE_AGGREGATION, "harness_aggregation.stage_aggregation_head:StageAggregationHead")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
