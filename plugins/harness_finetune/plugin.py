"""Entry point of the fine-tune plugins: the derived backbone, its registry entries, and the offline tasks.

Derived backbones are listed from ``$HARNESS_HOME/derived`` (``HARNESS_HOME`` from the
environment or the config file, as :func:`harness.settings.load_settings` reads it).
"""

from __future__ import annotations

from typing import Any

from harness.finetune.derived import DerivedStore
from harness.hookspecs import hookimpl
from harness.settings import load_settings
from harness_finetune.derived_backbone import DerivedBackbone
from harness_finetune.kriegeskorte_tasks import K92Animacy, K92Category
from harness_finetune.lowlevel_tasks import Digits, Gratings


@hookimpl
def harness_plugins() -> list[type]:
    return [DerivedBackbone]


@hookimpl
def harness_registry() -> list[dict[str, Any]]:
    return [DerivedStore(load_settings().home).registry_fragment()]


@hookimpl
def harness_tasks() -> list[type]:
    return [K92Animacy, K92Category, Digits, Gratings]
