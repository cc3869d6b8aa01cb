"""One factory: registry entry → validated args → plugin instance, with requirement checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.contracts import Backbone, BuildContext, Dataset, Plugin, Stimuli
from harness.plugins import Catalog, check_requirements
from harness.registry import Registry, validate_args
from harness.specs import RegistryEntry

if TYPE_CHECKING:
    from harness.cache import TokenStore
    from harness.settings import Settings


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

    def build(self, entry: RegistryEntry) -> Plugin:
        cls = self.catalog.get(entry.kind, entry.plugin)
        check_requirements(cls.spec, entry.name)
        args = validate_args(entry, cls)
        ctx = BuildContext(entry=entry, settings=self.settings, device=self.device, seed=self.seed, tokens_for=self.tokens_for,
                           stimuli_for=self.stimuli_of, dataset_for=self.dataset)
        return cls(args, ctx)

    def backbone(self, name: str) -> Backbone:
        """Backbones are cached per factory: datasets that generate from a net and the runner share it."""
        if name not in self._backbones:
            bb = self.build(self.registry.get(name, "backbone"))
            assert isinstance(bb, Backbone)
            self._backbones[name] = bb
        return self._backbones[name]

    def release(self, name: str) -> None:
        self._backbones.pop(name, None)

    def dataset(self, name: str) -> Dataset:
        ds = self.build(self.registry.get(name, "dataset"))
        assert isinstance(ds, Dataset)
        return ds

    def stimuli_of(self, dataset_name: str) -> Stimuli:
        """Another registry dataset's stimuli (a synthetic brain may be generated on real images)."""
        return self.dataset(dataset_name).stimuli()

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
