"""Plugins extend the command line (``harness_cli``) and the database (``harness_sql``), and receive settings.

A tiny plugin registered in-process (no entry point, no install) adds a command group,
a migration and a view, and lists a registry entry under the ``--home`` it is handed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from harness.cli import build_app
from harness.cli.context import options, settings
from harness.errors import StoreError
from harness.factory import Factory
from harness.hookspecs import hookimpl
from harness.plugins import build_catalog, make_manager
from harness.settings import Settings, load_settings
from harness.store import Store


class _Plugin:
    """Adds ``harness hello greet NAME``, a ``greetings`` table + view, and one entry per file under home/zoo."""

    def __init__(self, sql: Path) -> None:
        self.sql = sql

    @hookimpl
    def harness_cli(self, app: typer.Typer) -> None:
        hello = typer.Typer(help="Say hello.", no_args_is_help=True)

        @hello.command("greet")
        def greet(name: str) -> None:
            typer.echo(f"hello {name} from {settings().home}")

        app.add_typer(hello, name="hello")

    @hookimpl
    def harness_sql(self) -> list[Path]:
        return [self.sql]

    @hookimpl
    def harness_registry(self, settings: Settings) -> list[dict[str, Any]]:
        zoo = settings.home / "zoo"
        names = sorted(p.stem for p in zoo.glob("*.txt")) if zoo.is_dir() else []
        return [{"heads": {n: {"plugin": "rsa"} for n in names}}]


@pytest.fixture
def plugin(tmp_path: Path) -> _Plugin:
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "901_greetings.sql").write_text("CREATE TABLE greetings (name VARCHAR);")
    (sql / "greeting_count.sql").write_text("SELECT count(*) AS n FROM greetings")
    return _Plugin(sql)


def test_a_plugin_adds_a_command_group(plugin: _Plugin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CONFIG", str(tmp_path / "none.toml"))
    app = build_app(build_catalog(*make_manager(extra_plugins=[plugin])))
    r = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "hello", "greet", "ada"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"hello ada from {tmp_path / 'h'}"
    assert "hello" in CliRunner().invoke(app, ["--help"]).output
    options.home = None  # the global options live for one invocation; leave none behind for other tests


def test_a_broken_cli_hook_is_reported_and_the_rest_still_works(plugin: _Plugin) -> None:
    class Broken:
        @hookimpl
        def harness_cli(self, app: typer.Typer) -> None:
            raise RuntimeError("boom")

    app = build_app(build_catalog(*make_manager(extra_plugins=[Broken(), plugin])))
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0 and "hello" in r.output and "cache" in r.output
    assert "harness_cli failed: RuntimeError: boom" in r.output + r.stderr


def test_core_commands_do_not_load_plugins() -> None:
    """``harness sql`` must start fast: plugins (and torch, timm …) load only for a command the core lacks."""
    class Counting:
        calls = 0

        @hookimpl
        def harness_cli(self, app: typer.Typer) -> None:
            Counting.calls += 1

    app = build_app(build_catalog(*make_manager(extra_plugins=[Counting()], entrypoints=False)))
    assert CliRunner().invoke(app, ["cache", "--help"]).exit_code == 0
    assert Counting.calls == 0
    CliRunner().invoke(app, ["no-such-command"])
    assert Counting.calls == 1


def test_plugin_migrations_and_views_are_applied_once(plugin: _Plugin, tmp_path: Path) -> None:
    store = Store(tmp_path / "lb.duckdb", extra_sql=[plugin.sql])
    store.migrate()
    store.migrate()  # a second migration leaves the plugin's table alone
    with store.writer() as con:
        con.execute("INSERT INTO greetings VALUES ('ada')")
    store.migrate()
    assert store.query("SELECT n FROM greeting_count").n.tolist() == [1]
    assert 901 in set(store.query("SELECT version FROM schema_migrations").version)
    # the core's views are there too, and a core-only Store keeps the plugin's view in place
    Store(tmp_path / "lb.duckdb").migrate()
    assert store.query("SELECT n FROM greeting_count").n.tolist() == [1]


def test_a_migration_number_taken_twice_is_one_clear_error(plugin: _Plugin, tmp_path: Path) -> None:
    (plugin.sql / "001_clash.sql").write_text("SELECT 1")
    with pytest.raises(StoreError, match=r"001_clash.sql: migration version 1 is also harness.migrations/001_initial.sql"):
        Store(tmp_path / "lb.duckdb", extra_sql=[plugin.sql]).migrate()


def test_registry_hooks_receive_the_settings_not_the_environment(plugin: _Plugin, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``--home`` reaches plugin hooks as settings (the old CLI wrote os.environ for that)."""
    home = tmp_path / "elsewhere"
    (home / "zoo").mkdir(parents=True)
    (home / "zoo" / "rsa_from_home.txt").write_text("")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "env-home"))
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({"plugin_entries": True}))
    s = load_settings().with_overrides(home=home, registry=reg)
    f = Factory.open(s, catalog=build_catalog(*make_manager(extra_plugins=[plugin])))
    assert f.registry.get("rsa_from_home", "head").plugin == "rsa"
    f2 = Factory.open(load_settings().with_overrides(registry=reg),
                      catalog=build_catalog(*make_manager(extra_plugins=[plugin])))
    assert "rsa_from_home" not in f2.registry.entries
    assert plugin.sql in f.store().extra_sql


def test_factory_open_random_init_turns_every_backbone_into_its_control(tmp_path: Path) -> None:
    reg = tmp_path / "registry.yaml"
    reg.write_text(yaml.safe_dump({"plugin_entries": False,
                                   "backbones": {"a": {"plugin": "torchvision"}, "b": {"plugin": "torchvision"}},
                                   "heads": {"rsa": {"plugin": "rsa"}}}))
    f = Factory.open(load_settings().with_overrides(registry=reg), random_init=True)
    assert all(e.random_init for e in f.registry.of_kind("backbone"))
    assert not f.registry.get("rsa").random_init
