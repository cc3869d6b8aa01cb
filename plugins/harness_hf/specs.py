"""What the transformers backbone declares: argument schemas and specs.

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


class HFArgs(PluginArgs):
    family: Literal["dinov2", "dinov2_registers", "vit_mae", "vit", "clip_vision"] = "dinov2"
    #: Hugging Face repo id, e.g. ``facebook/dinov2-base``
    hub_id: str | None = None
    revision: str | None = None
    #: explicit local ``from_pretrained`` folder (config.json + weights)
    weights: str | None = None
    #: config fields for random init (the hub model's architecture) and for small structural tests
    config: dict[str, Any] = Field(default_factory=dict)
    #: crop size fed to the net; default: the family's (224)
    image_size: int | None = Field(default=None, gt=0)


HF = PluginSpec(
    id="hf",
    kind="backbone",
    version="1",
    summary="transformers vision encoders (DINOv2 ± registers, MAE, ViT, CLIP vision) read at every block",
    args=HFArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("transformers",),
    extra="transformers",
)
