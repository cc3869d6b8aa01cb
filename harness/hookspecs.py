"""The hooks a harness plugin may implement (pluggy project name ``harness``).

A plugin is a module listed under the ``harness`` entry-point group::

    [project.entry-points.harness]
    my_backbones = "my_package.plugin"

and implements any of the hooks below with ``@harness.hookimpl``. First-party
plugins in ``plugins/`` register exactly this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from harness.settings import Settings
    from harness.specs import LazyPlugin

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_plugins() -> list[type | LazyPlugin]:
    """Return plugin classes (subclasses of Backbone, Head, Metric or Dataset), or their lazy declarations.

    Each class carries a ``spec: PluginSpec``. A :class:`harness.specs.LazyPlugin` pairs that spec with
    where the class lives (``"package.module:Class"``): the module is imported only when an entry of the
    plugin is built, so ``harness list``/``plan``/``--help`` never import torch or a model library and a
    missing library only affects the entries that need it. First-party plugins declare theirs this way,
    keeping specs in a module that imports only pydantic and :mod:`harness.specs`.
    """


@hookspec
def harness_registry(settings: Settings) -> list[Path | dict[str, Any]]:
    """Return registry fragments (paths to YAML files or already-parsed mappings).

    ``settings`` are the run's (``--home``, ``--data-root`` … already applied); an
    implementation may leave the argument out when it does not need it.

    Fragments have the same layout as ``registry.yaml`` (sections ``backbones``,
    ``heads``, ``metrics``, ``datasets``) and add named entries to the zoo. The
    project's own ``registry.yaml`` wins on a name clash.
    """


@hookspec
def harness_tasks() -> list[type]:
    """Return labelled-image task classes for ``harness finetune --task``.

    Each class subclasses :class:`harness.contracts.Task` and carries a ``spec: TaskSpec``.
    Tasks are kept out of the registry's four kinds because they hold class labels, not
    brain targets: they feed fine-tuning, never the backbone × head × dataset plan.
    """


@hookspec
def harness_cli(app: typer.Typer) -> None:
    """Add a command or command group to the ``harness`` command line (``app.add_typer`` / ``app.command``).

    Commands get their settings with :func:`harness.cli.context.settings` and a ready
    factory with ``Factory.open``; errors are raised as :class:`harness.errors.HarnessError`
    and printed as one line by the CLI, like the core's own commands.
    """


@hookspec
def harness_sql() -> list[Path]:
    """Return folders of SQL files for tables and views the plugin owns in the leaderboard database.

    ``NNN_name.sql`` files are migrations, applied once each in version order together with
    the core's (numbers share one sequence: pick an unused one); every other ``name.sql``
    defines the view ``name`` (a SELECT), recreated on each migration like ``leaderboards/*.sql``.
    """
