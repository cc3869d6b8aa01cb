"""The transformers vision families, as data: model class, config class, prefix tokens, preprocessing.

A family row says everything the backbone needs to know about one architecture, so
adding a family is one row here and never a branch in the backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.specs import Preprocess

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _one_cls(cfg: Any) -> int:
    return 1


def _cls_and_registers(cfg: Any) -> int:
    return 1 + int(cfg.num_register_tokens)


@dataclass(frozen=True)
class Family:
    model_class: str
    config_class: str
    #: tokens before the patch grid (CLS, then registers): the first is the global token
    prefix_tokens: Callable[[Any], int]
    #: preprocessing at a given crop size (the size the net is fed)
    preprocess: Callable[[int], Preprocess]
    default_size: int = 224
    #: config values forced for feature extraction, at build and at from_pretrained
    forced_config: dict[str, Any] = field(default_factory=dict)
    #: the net accepts `interpolate_pos_encoding` (inputs of another size than its config's)
    interpolates: bool = True
    #: MAE shuffles patches by sorting a noise vector: an increasing one keeps patch order
    ordered_noise: bool = False
    init_kwargs: dict[str, Any] = field(default_factory=dict)


def _imagenet_crop(size: int) -> Preprocess:
    return Preprocess.from_crop_pct(size, 0.875, interpolation="bicubic", mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _vit_google(size: int) -> Preprocess:
    """google/vit-* image processors resize straight to size with mean = std = 0.5."""
    return Preprocess(resize=size, crop=size, interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _clip(size: int) -> Preprocess:
    return Preprocess(resize=size, crop=size, interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD)


FAMILIES: dict[str, Family] = {
    # DINOv2 interpolates its position embeddings itself (config.image_size is 518); fed at 224 like its linear probes
    "dinov2": Family("Dinov2Model", "Dinov2Config", _one_cls, _imagenet_crop, interpolates=False),
    "dinov2_registers": Family("Dinov2WithRegistersModel", "Dinov2WithRegistersConfig", _cls_and_registers,
                               _imagenet_crop, interpolates=False),
    # mask_ratio 0 keeps every patch; without it MAE drops 75 % of them at random
    "vit_mae": Family("ViTMAEModel", "ViTMAEConfig", _one_cls, _imagenet_crop, forced_config={"mask_ratio": 0.0},
                      ordered_noise=True),
    "vit": Family("ViTModel", "ViTConfig", _one_cls, _vit_google, init_kwargs={"add_pooling_layer": False}),
    "clip_vision": Family("CLIPVisionModel", "CLIPVisionConfig", _one_cls, _clip),
}
