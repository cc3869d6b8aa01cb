"""The zoo: registry.yaml plus plugin-provided fragments, validated against plugin schemas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from harness import strict_yaml
from harness.errors import PluginMissingError, RegistryError
from harness.plugins import Catalog
from harness.specs import SECTIONS, PluginArgs, PluginKind, PluginSpec, RegistryEntry

if TYPE_CHECKING:
    from harness.contracts import Plugin
    from harness.settings import Settings


@dataclass(frozen=True)
class Registry:
    entries: dict[str, RegistryEntry]

    def of_kind(self, kind: PluginKind) -> list[RegistryEntry]:
        return [e for e in self.entries.values() if e.kind == kind]

    def get(self, name: str, kind: PluginKind | None = None) -> RegistryEntry:
        e = self.entries.get(name)
        if e is None or (kind is not None and e.kind != kind):
            names = sorted(n for n, x in self.entries.items() if kind in (None, x.kind))
            raise RegistryError(f"no {kind or 'registry'} entry named {name!r} (known: {', '.join(names)})")
        return e


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry ({exc.strerror or exc})") from exc
    try:
        data = strict_yaml.load(text) or {}
    except strict_yaml.YAMLProblem as exc:
        raise RegistryError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: top level must be a mapping of sections {sorted(SECTIONS)}")
    return data


#: top-level key of a registry file choosing which installed plugins' own entries join the zoo:
#: ``true`` (default, all), ``false`` (none: only this file), or a list of entry-point names.
PLUGIN_ENTRIES = "plugin_entries"


def parse_fragment(data: dict[str, Any], source: str) -> list[RegistryEntry]:
    entries: list[RegistryEntry] = []
    for section, body in data.items():
        if section == PLUGIN_ENTRIES:
            continue
        if section not in SECTIONS:
            raise RegistryError(f"{source}: unknown section {section!r}; expected one of {sorted(SECTIONS)}")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise RegistryError(f"{source}: section {section!r} must map entry names to entries")
        for name, raw in body.items():
            where = f"{source}: {section}.{name}"
            if not isinstance(raw, dict):
                raise RegistryError(f"{where}: entry must be a mapping with at least 'plugin'")
            try:
                entries.append(RegistryEntry(name=str(name), kind=SECTIONS[section], source=source, **raw))
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"])
                raise RegistryError(f"{where}: field {field!r}: {err['msg']}") from None
    return entries


def validate_args(entry: RegistryEntry, plugin: type[Plugin] | PluginSpec) -> PluginArgs:
    """Validate an entry's args against its plugin's schema (a class or its spec: validating imports no
    plugin module); errors name file, entry and field."""
    section = next(s for s, k in SECTIONS.items() if k == entry.kind)
    spec = plugin if isinstance(plugin, PluginSpec) else plugin.spec
    return spec.parse_args(entry.args, f"{entry.source}: {section}.{entry.name}")


def load_registry(catalog: Catalog, path: Path | None, settings: Settings, validate: bool = True) -> Registry:
    """Plugin fragments first, then the user's file, which overrides by name.

    ``settings`` reach the ``harness_registry`` hooks that ask for them (e.g. fine-tunes listed from
    ``settings.home``), as pytest hands ``config`` to its hooks, so no plugin reads the environment.
    """
    entries: dict[str, RegistryEntry] = {}
    user = _read_yaml(path) if path is not None and path.is_file() else {}
    include = user.get(PLUGIN_ENTRIES, True)
    if not isinstance(include, (bool, list)):
        raise RegistryError(f"{path}: {PLUGIN_ENTRIES} must be true, false or a list of plugin names")
    pm = catalog.manager
    for impl in pm.hook.harness_registry.get_hookimpls():
        name = pm.get_name(impl.plugin) or ""
        if include is False or (isinstance(include, list) and name not in include):
            continue
        kwargs = {"settings": settings}
        for frag in impl.function(*[kwargs[a] for a in impl.argnames]) or ():
            if isinstance(frag, (str, Path)):
                p = Path(frag)
                new = parse_fragment(_read_yaml(p), str(p))
            else:
                new = parse_fragment(frag, "plugin registry fragment")
            for e in new:
                entries[e.name] = e
    if path is not None:
        if not path.is_file():
            raise RegistryError(f"{path}: registry file not found")
        for e in parse_fragment(user, str(path)):
            entries[e.name] = e
    if validate:
        for e in entries.values():
            try:
                spec = catalog.spec(e.kind, e.plugin)
            except PluginMissingError as exc:
                section = next(s for s, k in SECTIONS.items() if k == e.kind)
                raise PluginMissingError(f"{e.source}: {section}.{e.name}: {exc}") from None
            validate_args(e, spec)
    return Registry(entries=entries)
