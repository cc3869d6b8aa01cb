"""What the timm backbone declares: argument schemas and specs.

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
    Preprocess,
)


class TimmArgs(PluginArgs):
    model: str = Field("tf_efficientnet_lite0", description="timm model name, optionally with .pretrained_tag")
    #: explicit weights file (.safetensors, or a pickle read with weights_only=True)
    weights: str | None = None
    #: weights file relative to a weights root; default ``timm/<model>.safetensors``
    weights_file: str | None = None
    #: HF hub repo/file of the weights; default: the repo in timm's pretrained cfg
    hf_repo: str | None = None
    hf_file: str = "model.safetensors"
    revision: str | None = None
    #: a torch-hub style URL (its basename is looked up in the torch hub cache)
    url: str | None = None
    #: expected sha256 (prefix) of the weights file; default: the entry's meta.sha256
    sha256: str | None = None
    checkpoint: Literal["timm", "moco_v3"] = "timm"
    #: extra timm.create_model kwargs (e.g. ``num_heads: 12`` for MoCo v3's ViT-S)
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    #: ``blocks`` (ViTs) / ``stages`` (CNNs) by default; CNNs also offer ``blocks``
    layer_set: str | None = None
    #: a subset of the layer set's names (kept in depth order)
    layers: tuple[str, ...] | None = None
    #: preprocessing override; default from the checkpoint layout, else timm's pretrained cfg
    preprocess: Preprocess | None = None
    #: default: the family's measured default (on for CNNs)
    channels_last: bool | None = None


TIMM = PluginSpec(
    id="timm",
    kind="backbone",
    version="2",
    summary="timm image models (ViT in1k/in21k, ResNet, SE-ResNeXt, EfficientNet-Lite, MoCo v3) by block or stage",
    args=TimmArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("timm",),
    extra="timm",
)
