"""Discovering plugins: a pluggy manager fed only by entry points.

The core never imports a plugin module by name; what is installed is what exists.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from harness import hookspecs
from harness.errors import PluginMissingError, RegistryError
from harness.specs import LazyPlugin, PluginKind, PluginSpec

if TYPE_CHECKING:
    from harness.contracts import Plugin


@dataclass(frozen=True)
class Catalog:
    """All installed plugin classes by kind and id, plus the pluggy manager that found them.

    A value of ``classes`` is a class or a :class:`~harness.specs.LazyPlugin` (its spec, its class imported on the
    first :meth:`get`): listing and validating read :meth:`spec`, which imports no plugin module.
    """

    manager: pluggy.PluginManager
    classes: dict[tuple[PluginKind, str], type[Plugin] | LazyPlugin]
    #: entry points that failed to import: name → one-line error (the rest still work)
    broken: dict[str, str] = field(default_factory=dict)

    def _declared(self, kind: PluginKind, plugin_id: str) -> type[Plugin] | LazyPlugin:
        try:
            return self.classes[(kind, plugin_id)]
        except KeyError:
            known = sorted(pid for k, pid in self.classes if k == kind)
            broken = "".join(f"; entry point {n!r} failed to load: {e}" for n, e in self.broken.items())
            raise PluginMissingError(
                f"{kind} plugin {plugin_id!r} is not installed (installed: {', '.join(known) or 'none'}){broken}"
            ) from None

    def get(self, kind: PluginKind, plugin_id: str) -> type[Plugin]:
        """The plugin class (a lazily declared one is imported now: building needs it)."""
        found = self._declared(kind, plugin_id)
        return found.load() if isinstance(found, LazyPlugin) else found

    def spec(self, kind: PluginKind, plugin_id: str) -> PluginSpec:
        """The plugin's spec without importing its class's module."""
        return self._declared(kind, plugin_id).spec

    def specs(self, kind: PluginKind | None = None) -> list[PluginSpec]:
        return [c.spec for (k, _), c in sorted(self.classes.items()) if kind in (None, k)]

    def sql_folders(self) -> tuple[Path, ...]:
        """Folders of plugin-owned migrations and views (``harness_sql`` hook), in registration order."""
        return tuple(Path(p) for result in self.manager.hook.harness_sql() for p in result or ())


def load_entrypoints(pm: pluggy.PluginManager) -> dict[str, str]:
    """Register every ``harness`` entry point; one that fails to import is reported, not fatal."""
    broken: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            broken[ep.name] = f"{ep.value}: {type(exc).__name__}: {first}"
            continue
        pm.register(module, name=ep.name)
    return broken


def make_manager(extra_plugins: Iterable[object] = (), entrypoints: bool = True) -> tuple[pluggy.PluginManager, dict[str, str]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    broken = load_entrypoints(pm) if entrypoints else {}
    for p in extra_plugins:
        pm.register(p)
    return pm, broken


def where(cls: type | LazyPlugin) -> str:
    """``module.Class`` of a plugin class or of a lazy declaration's target, for error messages."""
    return cls.target.replace(":", ".") if isinstance(cls, LazyPlugin) else f"{cls.__module__}.{cls.__qualname__}"


def build_catalog(pm: pluggy.PluginManager, broken: dict[str, str] | None = None) -> Catalog:
    classes: dict[tuple[PluginKind, str], type[Plugin] | LazyPlugin] = {}
    for result in pm.hook.harness_plugins():
        for cls in result or ():
            spec = getattr(cls, "spec", None)
            if not isinstance(spec, PluginSpec):
                raise RegistryError(f"plugin class {where(cls)} has no PluginSpec 'spec'")
            key = (spec.kind, spec.id)
            if key in classes and classes[key] is not cls:
                raise RegistryError(f"{spec.kind} plugin id {spec.id!r} registered twice: {where(classes[key])} and {where(cls)}")
            classes[key] = cls
    return Catalog(manager=pm, classes=classes, broken=dict(broken or {}))


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return build_catalog(*make_manager())
