"""Entry point of the Stable Diffusion UNet backbones and their registry fragment (SD 1.5, SD 2.1)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_diffusers.stable_diffusion_backbone import StableDiffusionBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [StableDiffusionBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
