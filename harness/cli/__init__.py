"""The ``harness`` command line: one module per command group, plus the groups plugins add.

Core groups: :mod:`.listing` (list), :mod:`.run` (plan, run), :mod:`.results`
(leaderboard, sql), :mod:`.export`, :mod:`.report`, :mod:`.analyze`, :mod:`.cache`, :mod:`.data`, :mod:`.weights`. Installed plugins add
theirs through the ``harness_cli`` hook (e.g. ``harness finetune``). Shared state —
global options, consoles, settings, the factory — is in :mod:`.context`.

Every user error prints one line and exits with a meaningful code:
0 ok, 1 some jobs failed, 2 bad input/config, 3 database problem, 4 database busy, 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from typer.core import TyperGroup

from harness.cli import analyze, cache, data, export, listing, report, results, run, weights
from harness.cli.context import err_console, options
from harness.console import styled
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.plugins import Catalog


def _global(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and final results.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging (tracebacks of failed jobs).")] = False,
    home: Annotated[Path | None, typer.Option(help="Cache/derived-weights folder [env HARNESS_HOME].")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Brain data root [env HARNESS_DATA_ROOT].")] = None,
    db: Annotated[Path | None, typer.Option(help="Leaderboard database file [env HARNESS_DB].")] = None,
    registry: Annotated[Path | None, typer.Option(help="registry.yaml to use [env HARNESS_REGISTRY].")] = None,
) -> None:
    options.quiet, options.verbose = quiet, verbose
    options.home, options.data_root, options.db, options.registry = home, data_root, db, registry
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def plugin_commands(catalog: Catalog | None = None) -> click.Group:
    """The commands installed plugins add (``harness_cli`` hook), as one click group.

    A plugin whose hook fails is reported on stderr and left out; the other commands still work.
    """
    from harness.plugins import default_catalog

    ext = typer.Typer()
    pm = (catalog or default_catalog()).manager
    for impl in pm.hook.harness_cli.get_hookimpls():
        try:
            impl.function(*[{"app": ext}[a] for a in impl.argnames])
        except Exception as exc:  # one broken plugin must not take the command line down
            err_console.print(f"plugin {pm.get_name(impl.plugin)!r}: harness_cli failed: {type(exc).__name__}: {exc}",
                              highlight=False, markup=False)
    if not ext.registered_commands and not ext.registered_groups:
        return click.Group()
    return typer.main.get_group(ext)


def build_app(catalog: Catalog | None = None) -> typer.Typer:
    """The root app: global options, the core's command groups, then each installed plugin's (``harness_cli``).

    Plugins are loaded only when a command is not the core's (or for ``--help``): ``harness sql`` and
    ``harness leaderboard`` start without importing every plugin and its libraries.
    """

    class Root(TyperGroup):
        plugins_added = False

        def _add_plugins(self) -> None:
            if not self.plugins_added:
                self.plugins_added = True
                for name, cmd in plugin_commands(catalog).commands.items():
                    self.commands.setdefault(name, cmd)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            cmd = super().get_command(ctx, cmd_name)
            if cmd is None:
                self._add_plugins()
                cmd = super().get_command(ctx, cmd_name)
            return cmd

        def list_commands(self, ctx: click.Context) -> list[str]:
            self._add_plugins()
            return super().list_commands(ctx)

    app = typer.Typer(help="Which deep net, read out how, best predicts the visual brain?", no_args_is_help=True,
                      pretty_exceptions_enable=False, add_completion=False, cls=Root)
    app.callback()(_global)
    for group in (listing.app, run.app, results.app, export.app, report.app):  # top-level commands
        app.add_typer(group)
    app.add_typer(cache.app, name="cache")
    app.add_typer(data.app, name="data")
    app.add_typer(weights.app, name="weights")
    app.add_typer(analyze.app, name="analyze")
    return app


app = build_app()


def main() -> None:
    try:
        app()
    except HarnessError as exc:
        err_console.print(styled("red", "error:", f" {exc}"), soft_wrap=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:  # typer turns Ctrl-C into Exit(130) before it reaches us
        if exc.code == 130:
            _interrupted()
        raise


def _interrupted() -> None:
    err_console.print("interrupted: finished jobs are saved; rerun to resume", highlight=False)
    sys.exit(130)
