"""One factory: registry entry → validated args → plugin instance, with requirement checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from harness.errors import RegistryError
from harness.plugins import Catalog, default_catalog
from harness.registry import Registry, load_registry, validate_args
from harness.settings import Settings
from harness.specs import RegistryEntry

if TYPE_CHECKING:  # contracts import numpy: `harness list` opens a factory and builds nothing
    from harness.contracts import Backbone, Dataset, Plugin, Stimuli, TokenStore, View
    from harness.store import Store

P = TypeVar("P", bound="Plugin")

#: the zoo shipped with a checkout, used when neither settings nor the working directory name one
BUNDLED_REGISTRY = Path(__file__).resolve().parent.parent / "registry.yaml"


def registry_path(settings: Settings) -> Path | None:
    """``settings.registry``, else ``./registry.yaml``, else the checkout's own ``registry.yaml`` if present."""
    if settings.registry is not None:
        return settings.registry
    local = Path.cwd() / "registry.yaml"
    if local.is_file():
        return local
    return BUNDLED_REGISTRY if BUNDLED_REGISTRY.is_file() else None


@dataclass
class ExtractionOptions:
    batch_size: int = 32
    precision: str = "auto"  #: auto | fp32 | bf16 (autocast); auto: see harness.extract.resolve_precision
    max_grid: int = 32


@dataclass
class Factory:
    catalog: Catalog
    registry: Registry
    settings: Settings
    device: str = "cpu"
    seed: int = 0
    extraction: ExtractionOptions = field(default_factory=ExtractionOptions)
    #: called as ``progress(label, done, total)`` during extraction
    progress: Callable[[str, int, int], None] | None = None
    _backbones: dict[str, Backbone] = field(default_factory=dict)
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, *, catalog: Catalog | None = None, registry: Path | None = None,
             validate: bool = True, random_init: bool = False, device: str = "cpu", seed: int = 0,
             extraction: ExtractionOptions | None = None) -> Factory:
        """The one way to wire a factory: installed plugins, the registry they and ``settings`` name, options.

        ``registry`` defaults to :func:`registry_path`; ``random_init`` turns every backbone entry
        into its random-weights control; ``validate=False`` keeps entries with bad arguments
        (listings report them instead of failing).
        """
        catalog = catalog if catalog is not None else default_catalog()
        reg = load_registry(catalog, registry if registry is not None else registry_path(settings), settings,
                            validate=validate)
        if random_init:
            reg = Registry(entries={n: (e.model_copy(update={"random_init": True}) if e.kind == "backbone" else e)
                                    for n, e in reg.entries.items()})
        return cls(catalog=catalog, registry=reg, settings=settings, device=device, seed=seed,
                   extraction=extraction or ExtractionOptions())

    def store(self) -> Store:
        """The leaderboard database of these settings, with the SQL (tables, views) installed plugins add."""
        from harness.store import Store

        return Store(self.settings.db, extra_sql=self.catalog.sql_folders())

    def build(self, entry: RegistryEntry) -> Plugin:
        from harness.contracts import BuildContext

        spec = self.catalog.spec(entry.kind, entry.plugin)
        spec.check_requirements(f"entry {entry.name!r} ({spec.kind} plugin {spec.id!r})")  # before importing its module
        args = validate_args(entry, spec)
        cls = self.catalog.get(entry.kind, entry.plugin)
        ctx = BuildContext(entry=entry, settings=self.settings, device=self.device, seed=self.seed, tokens_for=self.tokens_for,
                           stimuli_for=self.stimuli_of, plugin_class=self.catalog.get,
                           dataset_for=self.dataset)
        return cls(args, ctx)

    def build_as(self, entry: RegistryEntry, kind: type[P]) -> P:
        """:meth:`build`, checking the plugin is of the contract the caller needs (one line if not)."""
        obj = self.build(entry)
        if not isinstance(obj, kind):
            raise RegistryError(f"{entry.source}: {entry.kind} entry {entry.name!r}: plugin {entry.plugin!r} "
                                f"({type(obj).__qualname__}) is not a {kind.__name__}")
        return obj

    def backbone(self, name: str) -> Backbone:
        """Backbones are cached per factory: the planner, datasets that generate from a net and the runner share one."""
        if name not in self._backbones:
            from harness.contracts import Backbone

            self._backbones[name] = self.build_as(self.registry.get(name, "backbone"), Backbone)
        return self._backbones[name]

    def release(self, name: str) -> None:
        self._backbones.pop(name, None)

    def dataset(self, name: str) -> Dataset:
        """Datasets are cached per factory too: the planner hashes the stimuli once and the runner reuses them."""
        if name not in self._datasets:
            from harness.contracts import Dataset

            self._datasets[name] = self.build_as(self.registry.get(name, "dataset"), Dataset)
        return self._datasets[name]

    def release_dataset(self, name: str) -> None:
        self._datasets.pop(name, None)

    def stimuli_of(self, dataset_name: str) -> Stimuli:
        """Another registry dataset's stimuli (a synthetic brain may be generated on real images)."""
        return self.dataset(dataset_name).stimuli()

    def view_tokens_for(self, backbone: Backbone, stimuli: Stimuli) -> Callable[[View, int, Callable[[int, int], None] | None], TokenStore]:
        """``HeadInput.view_tokens`` for a live backbone: the core's extraction and cache on a view of ``stimuli``."""
        from harness.cache import TokenCache
        from harness.extract import view_tokens

        def extract(view: View, batch_size: int, progress: Callable[[int, int], None] | None) -> TokenStore:
            return view_tokens(backbone, stimuli, view, TokenCache(self.settings.cache_dir), device=self.device,
                               batch_size=batch_size, progress=progress)

        return extract

    def tokens_for(self, backbone_name: str, stimuli: Stimuli) -> TokenStore:
        from harness.cache import TokenCache
        from harness.extract import ensure_tokens, resolve_precision

        o = self.extraction
        bb = self.backbone(backbone_name)
        return ensure_tokens(
            bb,
            stimuli,
            TokenCache(self.settings.cache_dir),
            device=self.device,
            batch_size=o.batch_size,
            precision=resolve_precision(o.precision, bb, self.device),
            max_grid=o.max_grid,
            progress=(lambda d, t: self.progress(f"extract {backbone_name} ({len(stimuli)} stimuli)", d, t)) if self.progress else None,
        )
