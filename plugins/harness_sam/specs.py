"""What the SAM backbone declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class SamArgs(PluginArgs):
    variant: Literal["vit_b", "vit_l", "vit_h"] = "vit_b"
    #: explicit checkpoint (the official sam_vit_*.pth, or a safetensors of the same keys)
    weights: str | None = None
    #: ImageEncoderViT fields to override (small structural controls and tests), e.g. depth, embed_dim, img_size
    config: dict[str, Any] = Field(default_factory=dict)
    #: also tap the 256-channel neck that SAM's mask decoder reads
    neck: bool = True


SAM = PluginSpec(
    id="sam",
    kind="backbone",
    version="1",
    summary="Segment Anything image encoder (ViT-B/L/H, 64×64 tokens) read at every block and the neck",
    args=SamArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("segment_anything",),
    extra="sam",
)
