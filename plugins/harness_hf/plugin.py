"""Entry point of the transformers backbones and their registry fragment (DINOv2, MAE, ViT, CLIP vision)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_hf.hf_backbone import HFBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [HFBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
