"""In-process registrations: plugin classes and registry entries added from Python for one session.

A researcher in a notebook can try a new head or backbone without packaging it as a plugin
(``harness.register(MyHead)``). Results computed with such code are not reproducible from the
installed distribution alone, so every job that touches an in-process entry carries
``"in_process": [names]`` in its config (which also gives it a job id of its own: it never replaces
the installed entry's results), and its entries are tagged ``in_process`` in the ``entries`` table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import RegistryError

if TYPE_CHECKING:
    from harness.contracts import Plugin
    from harness.plan import Plan
    from harness.plugins import Catalog
    from harness.registry import Registry
    from harness.specs import PluginKind, RegistryEntry

#: tag of entries registered (or whose plugin class was registered) in-process
IN_PROCESS = "in_process"
#: where in-process entries say they come from in error messages
SOURCE = "in-process (harness.register)"


@dataclass
class Session:
    """What this Python process registered on top of the installed plugins and registry files."""

    plugins: dict[tuple[str, str], type[Plugin]] = field(default_factory=dict)
    entries: dict[str, RegistryEntry] = field(default_factory=dict)

    # ------------------------------------------------------------------ registering
    def add_plugin(self, cls: type[Plugin], installed: Catalog) -> None:
        """A class whose (kind, id) an installed plugin already uses is refused: results would be ambiguous.
        Re-registering the same id in-process replaces the class (a notebook cell run twice)."""
        from harness.plugins import where
        from harness.specs import PluginSpec

        spec = getattr(cls, "spec", None)
        if not isinstance(spec, PluginSpec):
            raise RegistryError(f"plugin class {cls.__module__}.{cls.__qualname__} has no PluginSpec 'spec'")
        key = (spec.kind, spec.id)
        if key in installed.classes and installed.classes[key] is not cls:
            raise RegistryError(f"{spec.kind} plugin id {spec.id!r} is already installed "
                                f"({where(installed.classes[key])}); give the in-process class another id")
        self.plugins[key] = cls

    def add_entries(self, entries: Iterable[RegistryEntry], catalog: Catalog) -> list[RegistryEntry]:
        """Validated against the plugin's schema now, so a typo fails in the cell that made it."""
        from harness.registry import validate_args

        added = []
        for e in entries:
            tagged = e.model_copy(update={"tags": tuple(dict.fromkeys((*e.tags, IN_PROCESS))), "source": SOURCE})
            validate_args(tagged, catalog.spec(tagged.kind, tagged.plugin))
            self.entries[tagged.name] = tagged
            added.append(tagged)
        return added

    def remove(self, name: str | None = None) -> None:
        """Forget one in-process entry (by name), or everything registered in this session."""
        if name is None:
            self.plugins.clear()
            self.entries.clear()
            return
        if name not in self.entries:
            raise RegistryError(f"no in-process entry named {name!r} (registered: {', '.join(sorted(self.entries)) or 'none'})")
        del self.entries[name]

    # ------------------------------------------------------------------ applying
    def catalog(self, installed: Catalog) -> Catalog:
        """The installed catalog plus the in-process classes (same pluggy manager: hooks are unchanged)."""
        if not self.plugins:
            return installed
        return dataclasses.replace(installed, classes={**installed.classes, **self.plugins})

    def is_in_process(self, entry: RegistryEntry) -> bool:
        return entry.name in self.entries or (entry.kind, entry.plugin) in self.plugins

    def registry(self, base: Registry) -> Registry:
        """Registry files' entries, overridden by in-process ones; entries of in-process classes are tagged."""
        from harness.registry import Registry

        merged = {**base.entries, **self.entries}
        for name, e in merged.items():
            if self.is_in_process(e) and IN_PROCESS not in e.tags:
                merged[name] = e.model_copy(update={"tags": (*e.tags, IN_PROCESS)})
        return Registry(entries=merged)

    def label(self, plan: Plan) -> Plan:
        """Every job touching an in-process entry names those entries in its config (and so in its id)."""
        from harness.plan import job_hash

        jobs = []
        for j in plan.jobs:
            names = sorted({e.name for e in (j.backbone, j.head, j.dataset, *j.metrics) if self.is_in_process(e)})
            if names:
                config = {**j.config, IN_PROCESS: names}
                j = dataclasses.replace(j, config=config, job_id=job_hash(config))
            jobs.append(j)
        return dataclasses.replace(plan, jobs=jobs)


#: the process-wide session (a notebook kernel is one session)
SESSION = Session()


def entries_from(obj: RegistryEntry | Mapping[str, Any], kind: PluginKind | None, name: str | None,
                 fields: Mapping[str, Any]) -> list[RegistryEntry]:
    """A RegistryEntry, a registry fragment (``{"heads": {...}}``, same layout as registry.yaml), or one entry's
    fields (``kind`` and ``plugin`` required)."""
    from harness.registry import parse_fragment
    from harness.specs import SECTIONS, RegistryEntry

    if isinstance(obj, RegistryEntry):
        return [obj.model_copy(update=dict(fields))] if fields else [obj]
    if set(obj) & set(SECTIONS):
        return parse_fragment(dict(obj), SOURCE)
    if kind is None or name is None:
        raise RegistryError(f"{SOURCE}: an entry needs a name and a kind (backbone, head, metric or dataset)")
    section = next(s for s, k in SECTIONS.items() if k == kind)
    return parse_fragment({section: {name: {**obj, **fields}}}, SOURCE)
