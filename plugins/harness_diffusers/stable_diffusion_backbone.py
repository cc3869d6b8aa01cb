"""Stable Diffusion UNet features at chosen (time step, block) pairs.

Per batch: encode the images with the VAE (posterior mean × scaling factor), bring the
latent to each time step t (forward noising with a fixed seed, or DDIM inversion over N
steps), run the UNet conditioned on the empty-prompt text embedding of the pipeline's
own CLIP text encoder, and tap the outputs of the down blocks, the mid block and the up
blocks.

Layer names are ``t{t:04d}.{block}`` with blocks ``down0 … downK, mid, up0 … upK`` (UNet
execution order). ``order: time_major`` (default) lists every block at the first t, then
every block at the next t; ``block_major`` lists every t of down0, then of down1, … .
Either way a head picks "blocks at one t" by the ``t0250.`` prefix and "time steps at one
block" by the ``.down1`` suffix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contracts import Backbone, LayerTokens
from harness.errors import RegistryError, WeightsMissingError
from harness.kit.hooked import state_dict_digest, to_layer_tokens
from harness.kit.weights import local_snapshot, resolve_snapshot, snapshot_unavailable
from harness.specs import Preprocess
from harness_diffusers.specs import STABLE_DIFFUSION, SDArgs

if TYPE_CHECKING:  # torch, diffusers and transformers load when the pipeline is built, never to plan
    import torch
    from torch import nn

#: the file that makes a folder a diffusers pipeline (a model folder has config.json instead)
PIPELINE_MARKER = "model_index.json"


class _StopUNet(Exception):
    """Raised after the deepest wanted block: the rest of the UNet is never computed."""


class _Parts:
    """The pipeline pieces the features need (no safety checker, no image decoder use)."""

    def __init__(self, unet: nn.Module, vae: nn.Module, text: nn.Module, scheduler: Any, prompt_ids: torch.Tensor) -> None:
        self.unet, self.vae, self.text, self.scheduler, self.prompt_ids = unet, vae, text, scheduler, prompt_ids


class StableDiffusionBackbone(Backbone):
    spec = STABLE_DIFFUSION
    args: SDArgs

    def __init__(self, args: SDArgs, ctx: Any) -> None:
        super().__init__(args, ctx)
        self._parts: _Parts | None = None
        self._digest: str | None = None
        self._context: torch.Tensor | None = None

    @property
    def preprocess(self) -> Preprocess:
        # the VAE takes pixels in [-1, 1]
        s = self.args.image_size
        return Preprocess(resize=s, crop=s, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    # -- weights ----------------------------------------------------------------------------
    def _need_source(self) -> None:
        if not (self.args.hub_id or self.args.weights):
            raise WeightsMissingError(f"backbone {self.ctx.entry.name!r}: set args.hub_id or args.weights, or use --random-init")

    def _folder(self) -> Path:
        self._need_source()
        a, entry = self.args, self.ctx.entry.name
        local = None if a.weights else local_snapshot(a.hub_id or "", a.revision, self.ctx.settings, marker=PIPELINE_MARKER)
        folder = resolve_snapshot(entry, a.hub_id or "", a.revision, self.ctx.settings,
                                  explicit=a.weights or (str(local) if local else None))
        if not (folder / PIPELINE_MARKER).is_file():
            raise WeightsMissingError(f"backbone {entry!r}: {folder} is not a diffusers pipeline folder (no {PIPELINE_MARKER})")
        return folder

    def weights_reason(self) -> str | None:
        self._need_source()
        a = self.args
        return snapshot_unavailable(self.ctx.entry.name, a.hub_id or "", a.revision, self.ctx.settings, explicit=a.weights,
                                    marker=PIPELINE_MARKER)

    # -- building ---------------------------------------------------------------------------
    def _random_parts(self) -> _Parts:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        a = self.args
        try:
            unet = UNet2DConditionModel(**a.unet_config)
            vae = AutoencoderKL(**a.vae_config)
            tcfg = CLIPTextConfig(**a.text_config)
            text = CLIPTextModel(tcfg)
            sched = DDIMScheduler(**a.scheduler_config)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.*_config: {exc}") from None
        # the tokenizer's empty prompt: BOS, EOS, then padding to the context length
        n = int(tcfg.max_position_embeddings)
        ids = torch.tensor([[tcfg.bos_token_id, tcfg.eos_token_id] + [tcfg.pad_token_id] * (n - 2)])
        return _Parts(unet, vae, text, sched, ids)

    def _pretrained_parts(self) -> _Parts:
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        f = str(self._folder())
        unet = UNet2DConditionModel.from_pretrained(f, subfolder="unet", torch_dtype=torch.float32)
        vae = AutoencoderKL.from_pretrained(f, subfolder="vae", torch_dtype=torch.float32)
        text = CLIPTextModel.from_pretrained(f, subfolder="text_encoder", dtype=torch.float32)
        tok = CLIPTokenizer.from_pretrained(f, subfolder="tokenizer")
        sched = DDIMScheduler.from_pretrained(f, subfolder="scheduler")
        ids = tok([""], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        return _Parts(unet, vae, text, sched, ids)

    @property
    def parts(self) -> _Parts:
        import torch

        from harness_diffusers.noising import TO_EPSILON

        if self._parts is None:
            torch.manual_seed(self.ctx.seed)  # random-init controls are reproducible
            p = self._random_parts() if self.ctx.random_init else self._pretrained_parts()
            for m in (p.unet, p.vae, p.text):
                m.eval().requires_grad_(False)
            n_train = len(p.scheduler.alphas_cumprod)
            bad = [t for t in self.args.timesteps if t >= n_train]
            if bad:
                raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.timesteps {bad} ≥ {n_train} training steps")
            if p.scheduler.config.prediction_type not in TO_EPSILON:
                raise RegistryError(f"backbone {self.ctx.entry.name!r}: unsupported prediction_type "
                                    f"{p.scheduler.config.prediction_type!r}")
            self._parts = p
            unknown = [b for b in self.args.blocks or () if b not in self.all_blocks()]
            if unknown:
                self._parts = None
                raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.blocks {unknown} not in {list(self.all_blocks())}")
        return self._parts

    def module(self) -> nn.Module:
        return self.parts.unet

    def to(self, device: str) -> StableDiffusionBackbone:
        p = self.parts
        for m in (p.unet, p.vae, p.text):
            m.to(device)
        self._context = None
        return self

    def weights_digest(self) -> str:
        """Weights of all three nets plus everything else that changes the numbers but not the layer names."""
        if self._digest is None:
            p = self.parts
            h = hashlib.sha256()
            for m in (p.unet, p.vae, p.text):
                h.update(state_dict_digest(m).encode())
            extra = {"noise": self.args.noise, "seed": self.args.seed, "prompt_ids": p.prompt_ids.tolist(),
                     "inversion_steps": self.args.inversion_steps if self.args.noise == "ddim_inversion" else None,
                     "alphas_cumprod": hashlib.sha256(p.scheduler.alphas_cumprod.numpy().tobytes()).hexdigest(),
                     "prediction_type": p.scheduler.config.prediction_type}
            h.update(json.dumps(extra, sort_keys=True).encode())
            self._digest = h.hexdigest()
        return self._digest

    # -- layers -----------------------------------------------------------------------------
    def all_blocks(self) -> tuple[str, ...]:
        unet = self.parts.unet
        mid = ("mid",) if getattr(unet, "mid_block", None) is not None else ()
        return (*(f"down{i}" for i in range(len(unet.down_blocks))), *mid, *(f"up{i}" for i in range(len(unet.up_blocks))))

    @property
    def blocks(self) -> tuple[str, ...]:
        wanted = set(self.args.blocks or self.all_blocks())
        return tuple(b for b in self.all_blocks() if b in wanted)  # execution order, whatever order args give

    def layer_pairs(self) -> list[tuple[str, int, str]]:
        """(layer name, t, block) in layer order."""
        ts, bs = self.args.timesteps, self.blocks
        pairs = [(t, b) for t in ts for b in bs] if self.args.order == "time_major" else [(t, b) for b in bs for t in ts]
        return [(f"t{t:04d}.{b}", t, b) for t, b in pairs]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.layer_pairs())

    def _block_modules(self) -> dict[str, nn.Module]:
        unet = self.parts.unet
        mods: dict[str, nn.Module] = {f"down{i}": m for i, m in enumerate(unet.down_blocks)}
        if unet.mid_block is not None:
            mods["mid"] = unet.mid_block
        mods.update({f"up{i}": m for i, m in enumerate(unet.up_blocks)})
        return mods

    # -- forward ----------------------------------------------------------------------------
    def _empty_prompt(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if self._context is None:
            p = self.parts
            self._context = p.text(p.prompt_ids.to(device))[0]
        return self._context.to(dtype).expand(batch, -1, -1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        vae = self.parts.vae
        z = vae.encode(x).latent_dist.mean
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (z - shift) * vae.config.scaling_factor

    def _unet(self, x: torch.Tensor, t: int, context: torch.Tensor, capture: dict[str, LayerTokens] | None,
              need_output: bool) -> torch.Tensor | None:
        """One UNet call; with ``capture``, the wanted blocks' outputs land there (and, if the output is
        not needed, the call stops after the deepest of them)."""
        import torch

        handles = []
        wanted = self.blocks
        mods = self._block_modules()
        if capture is not None:
            for name in wanted:
                def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                    capture[name] = to_layer_tokens(out, 0)
                    if not need_output and name == wanted[-1]:
                        raise _StopUNet
                handles.append(mods[name].register_forward_hook(hook))
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        try:
            return self.parts.unet(x, tt, encoder_hidden_states=context).sample
        except _StopUNet:
            return None
        finally:
            for h in handles:
                h.remove()

    def _noised_ddpm(self, z: torch.Tensor, context: torch.Tensor) -> dict[int, dict[str, LayerTokens]]:
        """x_t = √ᾱ_t z + √(1-ᾱ_t) ε with one seeded ε; the UNet stops after the deepest wanted block."""
        from harness_diffusers.noising import add_noise, fixed_noise

        alphas = self.parts.scheduler.alphas_cumprod
        noise = fixed_noise(tuple(z.shape), self.args.seed, z.device, z.dtype)
        per_t: dict[int, dict[str, LayerTokens]] = {}
        for t in self.args.timesteps:
            per_t[t] = {}
            self._unet(add_noise(z, noise, t, alphas), t, context, per_t[t], need_output=False)
        return per_t

    def _noised_inversion(self, z: torch.Tensor, context: torch.Tensor) -> dict[int, dict[str, LayerTokens]]:
        """DDIM inversion over ``inversion_steps``; features are read from the inversion's own UNet calls."""
        from harness_diffusers.noising import ddim_inversion

        per_t: dict[int, dict[str, LayerTokens]] = {}

        def model(xt: torch.Tensor, t: int, capture: bool) -> torch.Tensor:
            if capture:
                per_t[t] = {}
            out = self._unet(xt, t, context, per_t[t] if capture else None, need_output=True)
            assert out is not None
            return out

        sched = self.parts.scheduler
        for _ in ddim_inversion(z, list(self.args.timesteps), self.args.inversion_steps, sched.alphas_cumprod,
                                sched.config.prediction_type, model):
            pass
        return per_t

    def tokens(self, x: torch.Tensor) -> dict[str, LayerTokens]:
        z = self._encode(x)
        context = self._empty_prompt(len(x), z.device, z.dtype)
        per_t = NOISING[self.args.noise](self, z, context)
        return {name: per_t[t][b] for name, t, b in self.layer_pairs()}


#: args.noise → how a clean latent is brought to each time step (and the features read on the way)
NOISING: dict[str, Callable[[StableDiffusionBackbone, torch.Tensor, torch.Tensor], dict[int, dict[str, LayerTokens]]]] = {
    "ddpm": StableDiffusionBackbone._noised_ddpm,
    "ddim_inversion": StableDiffusionBackbone._noised_inversion,
}
