"""Bringing a clean VAE latent to diffusion time t: one-shot forward noising, or DDIM inversion.

Both use only the scheduler's ``alphas_cumprod`` (ᾱ_t), so they work with whatever
scheduler config the pipeline ships. Forward noising draws one noise map from a seeded
generator and uses it for every image and every t, so an image's tokens do not depend
on which batch it sits in and time steps differ only in t. DDIM inversion runs the
deterministic DDIM update backwards (x_t → x_{t'}, t' > t) with the model's own noise
prediction, as in Song et al. 2021 / Mokady et al. 2023, over a grid of N steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

Tensor = torch.Tensor


def fixed_noise(shape: tuple[int, ...], seed: int, device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """A ``1×C×h×w`` noise map from ``seed``, drawn on CPU so it is the same on every device."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32).to(device=device, dtype=dtype)


def add_noise(latent: Tensor, noise: Tensor, t: int, alphas_cumprod: Tensor) -> Tensor:
    """q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), the DDPM/DDIM schedulers' ``add_noise``."""
    a = alphas_cumprod[t].to(device=latent.device, dtype=latent.dtype)
    return a.sqrt() * latent + (1 - a).sqrt() * noise.expand_as(latent)


#: model output → predicted noise ε, by the scheduler's ``prediction_type``
TO_EPSILON: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "epsilon": lambda out, x, a: out,
    "v_prediction": lambda out, x, a: a.sqrt() * out + (1 - a).sqrt() * x,
    "sample": lambda out, x, a: (x - a.sqrt() * out) / (1 - a).sqrt(),
}


def inversion_grid(targets: list[int], n_steps: int, n_train: int) -> list[int]:
    """The DDIM grid 0, T/N, 2T/N, … up to the last target, with every target on it."""
    step = max(1, n_train // n_steps)
    top = max(targets)
    return sorted({*range(0, top + 1, step), *targets})


def ddim_inversion(
    latent: Tensor,
    targets: list[int],
    n_steps: int,
    alphas_cumprod: Tensor,
    prediction_type: str,
    model: Callable[[Tensor, int, bool], Tensor],
) -> Iterator[int]:
    """Walk x from t = 0 up to the last target; yields each target t after ``model`` saw x_t.

    ``model(x, t, capture)`` returns the raw network output at (x, t); ``capture`` says
    whether this call's activations are wanted.
    """
    to_eps = TO_EPSILON[prediction_type]
    grid = inversion_grid(targets, n_steps, len(alphas_cumprod))
    want = set(targets)
    x = latent
    for i, t in enumerate(grid):
        out = model(x, t, t in want)
        if t in want:
            yield t
        if i + 1 == len(grid):
            return
        a_t = alphas_cumprod[t].to(device=x.device, dtype=x.dtype)
        a_n = alphas_cumprod[grid[i + 1]].to(device=x.device, dtype=x.dtype)
        eps = to_eps(out.to(x.dtype), x, a_t)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_n.sqrt() * x0 + (1 - a_n).sqrt() * eps
