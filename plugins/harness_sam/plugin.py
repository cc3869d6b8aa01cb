"""Entry point of the SAM image-encoder backbones and their registry fragment (SAM B/L/H)."""

from __future__ import annotations

from pathlib import Path

from harness.hookspecs import hookimpl
from harness_sam.sam_backbone import SamBackbone


@hookimpl
def harness_plugins() -> list[type]:
    return [SamBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
