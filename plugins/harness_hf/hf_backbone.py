"""transformers vision encoders read at every transformer block.

The block outputs come from ``output_hidden_states`` (entry 0, the embeddings, is
dropped), so the taps do not depend on each model's module layout, which transformers
renames between major versions. Pretrained models load with ``from_pretrained`` from a
local folder found by :func:`harness.kit.weights.resolve_snapshot`; random-init builds from
``args.config`` (the hub model's architecture, recorded in the registry entry), so
``--random-init`` works with no download.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contracts import Backbone, LayerTokens
from harness.errors import RegistryError, WeightsMissingError
from harness.kit.hooked import state_dict_digest, to_layer_tokens
from harness.kit.weights import local_snapshot, resolve_snapshot, snapshot_unavailable
from harness.specs import Preprocess
from harness_hf.families import FAMILIES, Family
from harness_hf.specs import HF, HFArgs

if TYPE_CHECKING:  # torch and transformers load when the net is built, never to plan
    import torch
    from torch import nn


def block_name(i: int, n: int) -> str:
    """1-based and zero-padded, so names sort in depth order: block01 … block40."""
    return f"block{i + 1:0{max(2, len(str(n)))}d}"


class HFBackbone(Backbone):
    spec = HF
    args: HFArgs

    def __init__(self, args: HFArgs, ctx: Any) -> None:
        super().__init__(args, ctx)
        self._net: nn.Module | None = None
        self._digest: str | None = None

    @property
    def family(self) -> Family:
        return FAMILIES[self.args.family]

    @property
    def size(self) -> int:
        return self.args.image_size or self.family.default_size

    @property
    def preprocess(self) -> Preprocess:
        return self.family.preprocess(self.size)

    # -- weights ----------------------------------------------------------------------------
    def _need_source(self) -> None:
        if not (self.args.hub_id or self.args.weights):
            raise WeightsMissingError(f"backbone {self.ctx.entry.name!r}: set args.hub_id or args.weights, or use --random-init")

    def _folder(self) -> Path:
        self._need_source()
        a = self.args
        local = None if a.weights else local_snapshot(a.hub_id or "", a.revision, self.ctx.settings)
        return resolve_snapshot(self.ctx.entry.name, a.hub_id or "", a.revision, self.ctx.settings,
                                explicit=a.weights or (str(local) if local else None))

    def weights_reason(self) -> str | None:
        self._need_source()
        a = self.args
        return snapshot_unavailable(self.ctx.entry.name, a.hub_id or "", a.revision, self.ctx.settings, explicit=a.weights)

    # -- network ----------------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        import torch

        if self._net is None:
            import transformers

            fam = self.family
            model_cls = getattr(transformers, fam.model_class)
            torch.manual_seed(self.ctx.seed)  # random-init controls are reproducible
            if self.ctx.random_init:
                try:
                    cfg = getattr(transformers, fam.config_class)(**{**self.args.config, **fam.forced_config})
                except (TypeError, ValueError) as exc:
                    raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.config: {exc}") from None
                net = model_cls(cfg, **fam.init_kwargs)
            else:
                net = model_cls.from_pretrained(str(self._folder()), dtype=torch.float32, **fam.forced_config,
                                                **fam.init_kwargs)
            self._net = net.eval()
        return self._net

    def module(self) -> nn.Module:
        return self.net

    def to(self, device: str) -> HFBackbone:
        self.net.to(device)
        return self

    def weights_digest(self) -> str:
        if self._digest is None:
            self._digest = state_dict_digest(self.net)
        return self._digest

    @property
    def layers(self) -> tuple[str, ...]:
        n = int(self.net.config.num_hidden_layers)
        return tuple(block_name(i, n) for i in range(n))

    def _forward_kwargs(self, x: torch.Tensor) -> dict[str, Any]:
        import torch

        kw: dict[str, Any] = {}
        if self.family.interpolates:
            kw["interpolate_pos_encoding"] = True
        if self.family.ordered_noise:
            p = int(self.net.config.patch_size)
            n = (x.shape[-2] // p) * (x.shape[-1] // p)
            kw["noise"] = torch.arange(n, device=x.device, dtype=torch.float32).expand(x.shape[0], n)
        return kw

    def tokens(self, x: torch.Tensor) -> dict[str, LayerTokens]:
        out = self.net(pixel_values=x, output_hidden_states=True, **self._forward_kwargs(x))
        hidden = out.hidden_states[1:]
        prefix = self.family.prefix_tokens(self.net.config)
        if len(hidden) != len(self.layers):
            raise RuntimeError(f"{self.args.family}: {len(hidden)} hidden states for {len(self.layers)} blocks")
        return {name: to_layer_tokens(h, prefix) for name, h in zip(self.layers, hidden, strict=True)}
