"""The hooks a harness plugin may implement (pluggy project name ``harness``).

A plugin is a module listed under the ``harness`` entry-point group::

    [project.entry-points.harness]
    my_backbones = "my_package.plugin"

and implements any of the hooks below with ``@harness.hookimpl``. First-party
plugins in ``plugins/`` register exactly this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_plugins() -> list[type]:
    """Return plugin classes (subclasses of Backbone, Head, Metric or Dataset).

    Each class carries a ``spec: PluginSpec``. Import heavy libraries inside the
    class, not at module import, so ``harness list`` stays fast and a missing
    library only affects the entries that need it.
    """


@hookspec
def harness_registry() -> list[Path | dict[str, Any]]:
    """Return registry fragments (paths to YAML files or already-parsed mappings).

    Fragments have the same layout as ``registry.yaml`` (sections ``backbones``,
    ``heads``, ``metrics``, ``datasets``) and add named entries to the zoo. The
    project's own ``registry.yaml`` wins on a name clash.
    """


@hookspec
def harness_tasks() -> list[type]:
    """Return labelled-image task classes for ``harness finetune --task`` (see :mod:`harness.finetune.tasks`).

    Each class subclasses ``harness.finetune.tasks.Task`` and carries a ``spec: TaskSpec``.
    Tasks are kept out of the registry's four kinds because they hold class labels, not
    brain targets: they feed fine-tuning, never the backbone × head × dataset plan.
    """
