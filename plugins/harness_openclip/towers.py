"""Where to tap each kind of open_clip visual tower, decided from the module's structure.

open_clip builds its image tower from one of three classes: its own ``VisionTransformer``
(``transformer.resblocks``), the OpenAI ``ModifiedResNet`` (``layer1``–``layer4``), or a
``TimmModel`` wrapping a timm ``trunk`` (ViT/EVA ``blocks``, ConvNeXt/FastViT ``stages``).
A table keyed on the class name keeps the tap rules in one place.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _native_vit(vis: nn.Module) -> tuple[dict[str, str], int]:
    n = len(vis.transformer.resblocks)  # type: ignore[attr-defined]
    return {block_name(i, n): f"transformer.resblocks.{i}" for i in range(n)}, 1


def _modified_resnet(vis: nn.Module) -> tuple[dict[str, str], int]:
    return {f"stage{i}": f"layer{i}" for i in range(1, 5)}, 0


def _timm_trunk(vis: nn.Module) -> tuple[dict[str, str], int]:
    trunk = vis.trunk  # type: ignore[attr-defined]
    taps: dict[str, str] = {}
    stages = getattr(trunk, "stages", None)
    if isinstance(stages, (nn.Sequential, nn.ModuleList)):
        taps.update({f"stage{i + 1}": f"trunk.stages.{i}" for i in range(len(stages))})
    blocks = getattr(trunk, "blocks", None)
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)):
        n = len(blocks)
        taps.update({block_name(i, n): f"trunk.blocks.{i}" for i in range(n)})
    if not taps:
        raise ValueError(f"open_clip timm trunk {type(trunk).__name__} has neither 'stages' nor 'blocks' to tap")
    return taps, int(getattr(trunk, "num_prefix_tokens", 0) or 0)


def block_name(i: int, n: int) -> str:
    """1-based and zero-padded, so names sort in depth order: block01 … block24."""
    return f"block{i + 1:0{max(2, len(str(n)))}d}"


#: visual tower class → (layer name → submodule path, number of prefix tokens before the patch grid)
TAPS: dict[str, Callable[[nn.Module], tuple[dict[str, str], int]]] = {
    "VisionTransformer": _native_vit,
    "ModifiedResNet": _modified_resnet,
    "TimmModel": _timm_trunk,
}


def tower_taps(vis: nn.Module) -> tuple[dict[str, str], int]:
    rule = TAPS.get(type(vis).__name__)
    if rule is None:
        raise ValueError(f"no tap rule for open_clip visual tower {type(vis).__name__} (known: {sorted(TAPS)})")
    return rule(vis)
