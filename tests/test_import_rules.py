"""The import rule of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml must hold.

Plugins import only the plugin API (harness.contracts, specs, hookspecs, errors, harness.kit);
the core never imports a plugin; no plugin imports another; no import cycles.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_plugin_folder_is_under_the_contracts() -> None:
    """A new plugins/ folder must join root_packages, or the linter would not look at it."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    folders = {p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").is_file()}
    assert folders <= set(cfg["root_packages"]), sorted(folders - set(cfg["root_packages"]))
    plugin_rule = cfg["contracts"][0]
    assert set(plugin_rule["source_modules"]) == folders


def test_import_linter_contracts_hold() -> None:
    """``lint-imports`` through this interpreter, so the graph is built from this environment's packages."""
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install 'harness[dev]')")
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    r = subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout
