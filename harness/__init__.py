"""harness: a plugin-based model-zoo benchmark for brain encoding.

The core (this package) never imports a plugin; plugins reach it through the
``harness`` entry-point group and the hooks in :mod:`harness.hookspecs`.

The Python API (:mod:`harness.api`: ``harness.plan``, ``harness.run``, ``harness.leaderboard`` …) is
re-exported here lazily, so ``import harness`` stays as cheap as the CLI's start-up needs (no torch).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: public names of :mod:`harness.api` reachable as ``harness.<name>``
API = ("plan", "run", "leaderboard", "sql", "tokens", "fit", "registry", "register", "unregister", "settings",
       "Plan", "RunSummary", "TokenSet")


def _api_attribute(name: str) -> property:
    """``harness.plan`` and ``harness.registry`` are also submodules: importing one makes Python bind the
    module on the package, which would shadow the API function of the same name. A data descriptor on the
    package's class wins over that binding (the submodule stays importable as ``harness.plan`` in
    ``from harness.plan import …`` and in ``sys.modules``)."""

    def get(module: types.ModuleType) -> Any:
        return getattr(importlib.import_module("harness.api"), name)

    def set_(module: types.ModuleType, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError(f"harness.{name} is the API function harness.api.{name}; it cannot be replaced")
        module.__dict__[f"_submodule_{name}"] = value  # the import system binding a submodule: keep, do not expose

    return property(get, set_, doc=f"harness.api.{name} (imported on first use)")


class _Package(types.ModuleType):
    pass


for _name in API:
    setattr(_Package, _name, _api_attribute(_name))
sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
