"""Shared machinery for torch backbones read out with forward hooks.

Plugins subclass :class:`HookedBackbone`, build their ``nn.Module`` and name the
modules to tap; this class turns module outputs into Tokens, stops the forward
pass after the deepest tapped layer, and hashes the loaded weights.
"""

from __future__ import annotations

import hashlib
import math
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from harness.contracts import Backbone, BuildContext, LayerTokens
from harness.specs import PluginArgs

if TYPE_CHECKING:  # torch is imported where a net is built or run: planning and listings build entries, never nets
    import torch
    from torch import nn


class _StopForward(Exception):
    """Raised by the last hook: layers after the deepest tap are never computed."""


def state_dict_digest(module: nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor: content, not names, keys caches."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def to_layer_tokens(out: Any, num_prefix_tokens: int = 1) -> LayerTokens:
    """CNN maps ``B×C×H×W`` → mean-pooled global; ViT sequences ``B×N×C`` → CLS global + patch grid.

    A sequence without prefix tokens (``num_prefix_tokens=0``) gets the mean of its
    tokens as the global token. Channels-last maps ``B×H×W×C`` must be permuted by the plugin.
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim == 4:
        return LayerTokens(local=out, global_=out.mean(dim=(2, 3)))
    if out.ndim == 3:
        b, _, c = out.shape
        patches = out[:, num_prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"cannot arrange {patches.shape[1]} patch tokens in a square grid")
        local = patches.transpose(1, 2).reshape(b, c, side, side)
        glob = out[:, 0] if num_prefix_tokens > 0 else patches.mean(dim=1)
        return LayerTokens(local=local, global_=glob)
    raise ValueError(f"unsupported layer output of shape {tuple(out.shape)}")


class HookedBackbone(Backbone):
    """A torch ``nn.Module`` tapped at named submodules."""

    num_prefix_tokens: int = 0

    def __init__(self, args: PluginArgs, ctx: BuildContext) -> None:
        super().__init__(args, ctx)
        self._net: nn.Module | None = None
        self._digest: str | None = None

    # -- to implement -----------------------------------------------------------------
    @abstractmethod
    def build_module(self) -> nn.Module:
        """Create the network with its weights (or random weights when ``ctx.random_init``)."""

    @abstractmethod
    def layer_modules(self) -> dict[str, str]:
        """Ordered mapping layer name → dotted submodule path, shallow to deep."""

    def layer_output(self, name: str, out: Any) -> LayerTokens:
        return to_layer_tokens(out, self.num_prefix_tokens)

    # -- provided ---------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        if self._net is None:
            import torch

            torch.manual_seed(self.ctx.seed)  # random-init controls are reproducible
            net = self.build_module()
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
            self._net = net.eval()
        return self._net

    def module(self) -> nn.Module:
        return self.net

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_modules())

    def weights_digest(self) -> str:
        if self._digest is None:
            self._digest = state_dict_digest(self.net)
        return self._digest

    def to(self, device: str) -> HookedBackbone:
        self.net.to(device)
        return self

    def forward_net(self, x: torch.Tensor) -> Any:
        if self.channels_last:
            import torch

            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def where(self, field: str) -> str:
        """``file: backbones.NAME: args.FIELD`` — where a bad argument came from, for one-line errors."""
        e = self.ctx.entry
        return f"{e.source}: backbones.{e.name}: args.{field}"

    def pick_layers(self, full: dict[str, str], requested: tuple[str, ...] | None) -> dict[str, str]:
        """The requested subset of a layer map (kept in depth order); an unknown name is a registry error."""
        if requested is None:
            return full
        unknown = [n for n in requested if n not in full]
        if unknown:
            from harness.errors import RegistryError

            raise RegistryError(f"{self.where('layers')}: unknown layer(s) {unknown}; known: {', '.join(full)}")
        return {n: p for n, p in full.items() if n in requested}

    def tokens(self, x: torch.Tensor) -> dict[str, LayerTokens]:
        captured: dict[str, LayerTokens] = {}
        names = self.layer_modules()
        last = list(names)[-1]
        handles = []
        mods = dict(self.net.named_modules())
        for name, path in names.items():
            if path not in mods:
                raise KeyError(f"{type(self).__name__}: no submodule {path!r} for layer {name!r}")

            def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                captured[name] = self.layer_output(name, out)
                if name == last and len(captured) == len(names):
                    raise _StopForward

            handles.append(mods[path].register_forward_hook(hook))
        try:
            self.forward_net(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in names if n not in captured]
        if missing:
            raise RuntimeError(f"{type(self).__name__}: layers {missing} produced no output")
        return {n: captured[n] for n in names}
