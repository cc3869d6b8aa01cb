"""Rebuilds a fine-tuned (derived) backbone: the parent's architecture with the derived safetensors, strict load.

The parent plugin is built with random weights (only its architecture, layers and
preprocessing are wanted), then every tensor is replaced from the derived file; a
missing or extra key is an error, and the loaded weights must hash to the digest
the manifest recorded, so a corrupt or edited file never yields silent numbers.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from harness.contracts import Backbone, BuildContext, LayerTokens
from harness.errors import DataError, HarnessError, WeightsMissingError
from harness.kit.fetch import sha256_file
from harness.specs import Preprocess, RegistryEntry
from harness_finetune.derived_store import DerivedManifest, DerivedStore
from harness_finetune.specs import DERIVED, DerivedArgs

if TYPE_CHECKING:
    import torch


class DerivedBackbone(Backbone):
    spec = DERIVED
    args: DerivedArgs

    @cached_property
    def manifest(self) -> DerivedManifest:
        return DerivedStore(self.ctx.settings.home).get(self.args.id)

    @cached_property
    def _parent_cls(self) -> type[Backbone]:
        if self.ctx.plugin_class is None:
            raise HarnessError(f"derived backbone {self.ctx.entry.name!r}: built without a plugin catalog (use Factory.build)")
        plugin = self.manifest.parent["plugin"]
        cls = self.ctx.plugin_class("backbone", plugin)
        if not issubclass(cls, Backbone):
            raise HarnessError(f"derived backbone {self.ctx.entry.name!r}: parent plugin {plugin!r} is not a backbone")
        return cls

    def unavailable_reason(self) -> str | None:
        try:
            m = self.manifest
            cls = self._parent_cls
        except HarnessError as exc:
            return str(exc)
        if not m.weights_path.is_file():
            return f"{m.weights_path}: derived weights file missing"
        missing = cls.spec.missing_requirements()
        if missing:
            return f"derived backbone {self.ctx.entry.name!r}: parent plugin {cls.spec.id!r} needs {', '.join(missing)}"
        return None

    @cached_property
    def _parent(self) -> Backbone:
        """The parent plugin instance, its module holding the derived weights."""
        from safetensors.torch import load_file

        from harness.kit.hooked import state_dict_digest

        m = self.manifest
        p = m.parent
        entry = RegistryEntry(name=p["name"], kind="backbone", plugin=p["plugin"], args=p["args"], random_init=True,
                              source=str(m.path / "manifest.json"))
        parent = self._parent_cls(self._parent_cls.spec.args(**p["args"]),
                                  BuildContext(entry=entry, settings=self.ctx.settings, device=self.ctx.device,
                                               seed=self.ctx.seed, tokens_for=self.ctx.tokens_for,
                                               plugin_class=self.ctx.plugin_class))
        net = parent.module()
        if net is None:
            raise DataError(f"derived backbone {self.ctx.entry.name!r}: parent plugin {p['plugin']!r} has no torch module")
        path = m.weights_path
        if not path.is_file():
            raise WeightsMissingError(f"{path}: derived weights file missing")
        if sha256_file(path) != m.data["weights"]["sha256"]:
            raise DataError(f"{path}: sha256 differs from its manifest (file corrupt or edited)")
        try:
            net.load_state_dict(load_file(str(path)), strict=True)
        except RuntimeError as exc:
            raise DataError(f"{path}: does not load strictly into {p['plugin']} {p['args']}: {str(exc).splitlines()[0]}") from exc
        net.eval()
        digest = state_dict_digest(net)
        if digest != m.data["weights"]["digest"]:
            raise DataError(f"{path}: loaded weights hash to {digest[:16]}…, manifest says {m.data['weights']['digest'][:16]}…")
        self._digest = digest
        return parent

    @property
    def preprocess(self) -> Preprocess:
        return self._parent.preprocess

    @property
    def layers(self) -> tuple[str, ...]:
        return self._parent.layers

    def weights_digest(self) -> str:
        _ = self._parent
        return self._digest

    def tokens(self, x: torch.Tensor) -> dict[str, LayerTokens]:
        return self._parent.tokens(x)

    def to(self, device: str) -> DerivedBackbone:
        self._parent.to(device)
        return self

    def module(self) -> torch.nn.Module | None:
        return self._parent.module()
