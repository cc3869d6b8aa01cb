"""What the open_clip backbone declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class OpenClipArgs(PluginArgs):
    #: an open_clip architecture name, e.g. ``ViT-B-32`` (``open_clip.list_models()``)
    model: str = "ViT-B-32"
    #: a pretrained tag listed for ``model`` by ``open_clip.list_pretrained()``; None builds random weights and
    #: needs ``random_init: true`` on the entry, so every score row from it is labelled random
    pretrained: str | None = "openai"
    #: explicit checkpoint file (.safetensors, or a state_dict pickle read with weights_only=True)
    weights: str | None = None
    #: fields of open_clip's CLIPVisionCfg to override (small structural controls and tests)
    vision_overrides: dict[str, Any] = Field(default_factory=dict)


OPENCLIP = PluginSpec(
    id="openclip",
    kind="backbone",
    version="1",
    summary="open_clip image towers (any listed architecture × pretrained tag) read at every block/stage",
    args=OpenClipArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("open_clip",),
    extra="openclip",
)
