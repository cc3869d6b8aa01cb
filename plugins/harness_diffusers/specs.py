"""What the Stable Diffusion backbone declares: argument schemas and specs.

Importing only pydantic and :mod:`harness.specs` (no torch, numpy or model library), so ``harness list`` and
registry validation read them without importing the classes' modules; each class sets ``spec`` to its constant
here and ``plugin.py`` declares it lazily (:class:`harness.specs.LazyPlugin`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from harness.specs import (
    IMAGES,
    TOKENS,
    PluginArgs,
    PluginSpec,
)


class SDArgs(PluginArgs):
    #: Hugging Face repo of a diffusers Stable Diffusion pipeline, e.g. ``stable-diffusion-v1-5/stable-diffusion-v1-5``
    hub_id: str | None = None
    revision: str | None = None
    #: explicit local pipeline folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)
    weights: str | None = None
    timesteps: tuple[int, ...] = (100, 250, 500)
    #: block names to tap (down0…, mid, up0…); default: all
    blocks: tuple[str, ...] | None = None
    noise: Literal["ddpm", "ddim_inversion"] = "ddpm"
    inversion_steps: int = Field(default=50, gt=0)
    seed: int = 0
    image_size: int = Field(default=512, gt=0)
    order: Literal["time_major", "block_major"] = "time_major"
    #: architectures for random init (the hub pipeline's, recorded in its registry entry) and small tests
    unet_config: dict[str, Any] = Field(default_factory=dict)
    vae_config: dict[str, Any] = Field(default_factory=dict)
    text_config: dict[str, Any] = Field(default_factory=dict)
    scheduler_config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timesteps")
    @classmethod
    def _ts_ok(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or min(v) < 0 or len(set(v)) != len(v):
            raise ValueError("timesteps must be distinct, non-negative and at least one")
        return tuple(sorted(v))


STABLE_DIFFUSION = PluginSpec(
    id="stable_diffusion",
    kind="backbone",
    version="1",
    summary="Stable Diffusion UNet features by (time step, down/mid/up block), VAE-encoded, empty prompt",
    args=SDArgs,
    consumes=frozenset({IMAGES}),
    produces=frozenset({TOKENS}),
    requires=("diffusers", "transformers"),
    extra="diffusers",
)
