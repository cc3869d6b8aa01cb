"""Gabor simple cells → complex-cell energy → pooled energy, read out as harness Tokens.

The filter bank is fixed (no training), so the weights digest is the digest of the
bank itself: change an argument and the token cache misses, as it should.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.hookspecs import hookimpl
from harness.kit.hooked import HookedBackbone
from harness.specs import IMAGES, TOKENS, PluginArgs, PluginSpec, Preprocess


class GaborArgs(PluginArgs):
    orientations: int = 8
    wavelengths: tuple[float, ...] = (4.0, 8.0, 16.0)
    image_size: int = 128


def gabor_bank(orientations: int, wavelengths: tuple[float, ...]) -> torch.Tensor:
    """Even/odd pairs: ``(2 · n_orient · n_wave) × 1 × k × k`` zero-mean, unit-norm kernels."""
    k = int(2 * math.ceil(max(wavelengths)) + 1)
    r = torch.arange(k, dtype=torch.float64) - k // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    kernels = []
    for lam in wavelengths:
        sigma = 0.56 * lam  # one-octave bandwidth
        for o in range(orientations):
            th = math.pi * o / orientations
            xr = xx * math.cos(th) + yy * math.sin(th)
            env = torch.exp(-(xx**2 + yy**2) / (2 * sigma**2))
            for phase in (0.0, math.pi / 2):
                g = env * torch.cos(2 * math.pi * xr / lam + phase)
                g = g - g.mean()
                kernels.append(g / g.norm())
    return torch.stack(kernels)[:, None].float()


class _Energy(nn.Module):
    """Complex cells: sqrt(even² + odd²) per quadrature pair, then 2× max pooling."""

    def forward(self, s1: torch.Tensor) -> torch.Tensor:
        even, odd = s1[:, 0::2], s1[:, 1::2]
        return F.max_pool2d(torch.sqrt(even**2 + odd**2 + 1e-8), 2)


class GaborNet(nn.Module):
    def __init__(self, bank: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("bank", bank)
        self.s1 = nn.Identity()
        self.c1 = _Energy()
        self.c1_pool = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(dim=1, keepdim=True)
        s1 = self.s1(F.conv2d(grey, self.bank, padding=self.bank.shape[-1] // 2, stride=2))
        return self.c1_pool(self.c1(s1))


class GaborBackbone(HookedBackbone):
    spec = PluginSpec(
        id="gabor",
        kind="backbone",
        version="1",
        summary="fixed Gabor-energy V1 model (simple cells, complex cells, pooled complex cells)",
        args=GaborArgs,
        consumes=frozenset({IMAGES}),
        produces=frozenset({TOKENS}),
    )
    args: GaborArgs

    @property
    def preprocess(self) -> Preprocess:
        s = self.args.image_size
        return Preprocess(resize=s, crop=s, interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def layer_modules(self) -> dict[str, str]:
        return {"s1": "s1", "c1": "c1", "c1_pool": "c1_pool"}

    def build_module(self) -> nn.Module:
        # random_init is meaningless for a fixed filter bank: the bank is the model
        return GaborNet(gabor_bank(self.args.orientations, tuple(self.args.wavelengths)))


@hookimpl
def harness_plugins() -> list[type]:
    return [GaborBackbone]


@hookimpl
def harness_registry() -> list[Path]:
    return [Path(__file__).with_name("registry.yaml")]
