"""Entry point of the Stable Diffusion UNet backbones and their registry fragment (SD 1.5, SD 2.1)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness.specs import LazyPlugin
from harness_diffusers.specs import STABLE_DIFFUSION


@hookimpl
def harness_plugins() -> list[LazyPlugin]:
    # specs only: each class's module (torch, model libraries) is imported when an entry is built
    return [LazyPlugin(STABLE_DIFFUSION, "harness_diffusers.stable_diffusion_backbone:StableDiffusionBackbone")]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
