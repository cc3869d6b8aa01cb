"""Entry point of the fine-tuning room: the derived backbone, its registry entries, the tasks, the
``harness finetune`` command and the ``finetunes`` table with its ``finetune_deltas`` view.

Derived backbones are listed from ``settings.home``/derived: the settings the hook receives,
so ``harness --home H`` finds the fine-tunes stored under ``H``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_finetune.derived_store import DerivedStore
from harness_finetune.specs import DERIVED

if TYPE_CHECKING:
    import typer

    from harness.settings import Settings


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(DERIVED, "harness_finetune.derived_backbone:DerivedBackbone")]


@hookimpl
def harness_registry(settings: Settings) -> list[dict[str, Any]]:
    return [DerivedStore(settings.home).registry_fragment()]


@hookimpl
def harness_tasks() -> list[type]:
    from harness_finetune.kriegeskorte_tasks import K92Animacy, K92Category  # numpy: only when tasks are asked for
    from harness_finetune.lowlevel_tasks import Digits, Gratings

    return [K92Animacy, K92Category, Digits, Gratings]


@hookimpl
def harness_cli(app: typer.Typer) -> None:
    from harness_finetune.cli import register

    register(app)


@hookimpl
def harness_sql() -> list[Path]:
    return [Path(__file__).with_name("sql")]
