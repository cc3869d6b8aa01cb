"""Cached tokens of one backbone on one stimulus set, as a researcher handles them in a notebook.

A thin view over a :class:`harness.cache.TokenStore` entry: layers stay memory-mapped on disk (a ViT-B on
10 000 images is tens of GB), ``.layer(name)`` hands out a numpy memmap or a torch tensor, and
``harness.fit`` passes the underlying store to a head exactly as the runner does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from harness.cache import TokenStore
from harness.errors import HarnessError

if TYPE_CHECKING:
    import torch

    from harness.contracts import Stimuli

TokenPart = Literal["local", "global"]


@dataclass(frozen=True)
class _LayerSubset(TokenStore):
    """A cache entry seen through some of its layers (files stay named by their index in the full list)."""

    only: tuple[str, ...] = ()

    @property
    def layers(self) -> tuple[str, ...]:
        return self.only

    def _file(self, layer: str, part: str) -> Path:
        return self.path / f"{list(self.meta['layers']).index(layer):03d}_{part}.npy"


@dataclass(frozen=True)
class TokenSet:
    """``backbone``'s tokens on ``stimuli``, read from the content-addressed cache."""

    backbone: str
    stimuli: Stimuli
    store: TokenStore
    #: the layers asked for (all of the backbone's when ``None`` was passed to ``harness.tokens``)
    selected: tuple[str, ...]

    @property
    def layers(self) -> tuple[str, ...]:
        return self.selected

    @property
    def key(self) -> str:
        """The cache key (``harness cache ls`` shows its first 12 characters)."""
        return self.store.key

    @property
    def ids(self) -> tuple[str, ...]:
        return self.stimuli.ids

    def __len__(self) -> int:
        return self.store.n

    def shape(self, name: str, part: TokenPart = "local") -> tuple[int, ...]:
        self._check(name)
        return tuple(self.store.local(name).shape if part == "local" else self.store.global_(name).shape)

    def layer(self, name: str, part: TokenPart = "local", as_: Literal["numpy", "torch"] = "numpy") -> np.ndarray | torch.Tensor:
        """``N×C×H×W`` local tokens (``part="local"``) or the ``N×C`` global token, in the stored dtype.

        numpy: a read-only memory map (nothing is loaded until indexed). torch: a float32 tensor in memory
        (torch cannot wrap a read-only map without copying, and heads train in float32 anyway).
        """
        self._check(name)
        if part not in ("local", "global"):
            raise HarnessError(f"token part must be 'local' or 'global', not {part!r}")
        arr = self.store.local(name) if part == "local" else self.store.global_(name)
        if as_ == "numpy":
            return arr
        if as_ == "torch":
            import torch

            return torch.from_numpy(np.asarray(arr, dtype=np.float32))
        raise HarnessError(f"as_ must be 'numpy' or 'torch', not {as_!r}")

    def for_head(self) -> TokenStore:
        """The cache entry a head reads, restricted to the selected layers (all of them: the entry itself)."""
        if self.selected == self.store.layers:
            return self.store
        return _LayerSubset(path=self.store.path, meta=self.store.meta, only=self.selected)

    def _check(self, name: str) -> None:
        if name not in self.selected:
            raise HarnessError(f"backbone {self.backbone!r} has no layer {name!r} here; layers: {', '.join(self.selected)}")

    def __repr__(self) -> str:
        return (f"TokenSet(backbone={self.backbone!r}, n={len(self)}, layers={list(self.selected)!r}, "
                f"key={self.key[:12]!r})")
