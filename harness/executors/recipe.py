"""What a worker process needs to rebuild the driver's factory: picklable, no live models, no callbacks.

Plugin classes travel by reference (module + name, as pickle does), so a worker must have the same
plugins installed as the driver; settings travel as paths, so every node must see HARNESS_HOME and the
data root at the same paths (a shared file system) for the token cache to be shared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from harness.factory import ExtractionOptions, Factory
from harness.plugins import Catalog, make_manager
from harness.registry import Registry
from harness.settings import Settings
from harness.specs import PluginKind


@dataclass(frozen=True)
class FactoryRecipe:
    classes: dict[tuple[PluginKind, str], type]
    registry: Registry
    settings: Settings
    device: str
    seed: int
    extraction: ExtractionOptions

    @classmethod
    def of(cls, f: Factory) -> FactoryRecipe:
        return cls(dict(f.catalog.classes), f.registry, f.settings, f.device, f.seed, replace(f.extraction))

    def environment(self) -> dict[str, str]:
        """Plugins read some settings from the environment (derived backbones under HARNESS_HOME)."""
        env = {"HARNESS_HOME": str(self.settings.home), "HARNESS_DB": str(self.settings.db)}
        if self.settings.data_root is not None:
            env["HARNESS_DATA_ROOT"] = str(self.settings.data_root)
        return env

    def build(self, **extraction: Any) -> Factory:
        """A fresh factory in this process; ``extraction`` overrides options (e.g. a batch size fitted here)."""
        os.environ.update(self.environment())
        pm, _ = make_manager(entrypoints=False)
        catalog = Catalog(manager=pm, classes=dict(self.classes))
        return Factory(catalog=catalog, registry=self.registry, settings=self.settings, device=self.device,
                       seed=self.seed, extraction=replace(self.extraction, **extraction))
