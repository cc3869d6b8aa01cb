"""SAM's image encoder (a windowed ViT at 1024 px, 64×64 tokens) read at every block and at its neck.

Only ``ImageEncoderViT`` is built, with the hyper-parameters of ``segment_anything.build_sam``;
the prompt encoder and mask decoder are never needed for features. Blocks output
channels-last ``B×H×W×C`` maps and there is no CLS token, so the global token is the mean
of the local ones. The official checkpoints are read with ``torch.load(weights_only=True)``
and their ``image_encoder.*`` part loaded strictly.

Preprocessing: SAM resizes the longest side to 1024 and zero-pads the rest; here the
shorter side is resized and centre-cropped (identical for square stimuli).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contracts import LayerTokens
from harness.errors import RegistryError
from harness.kit.hooked import HookedBackbone
from harness.kit.weights import WeightSource, load_state_dict, load_strict, resolve_weights, weights_unavailable
from harness.specs import Preprocess
from harness_sam.specs import SAM, SamArgs

if TYPE_CHECKING:  # torch and segment_anything load when the encoder is built, never to plan
    import torch
    from torch import nn

_DL = "https://dl.fbaipublicfiles.com/segment_anything/"

#: segment_anything.build_sam's encoder hyper-parameters and official checkpoints, by variant
VARIANTS: dict[str, dict[str, Any]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": (2, 5, 8, 11),
              "url": _DL + "sam_vit_b_01ec64.pth"},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": (5, 11, 17, 23),
              "url": _DL + "sam_vit_l_0b3195.pth"},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": (7, 15, 23, 31),
              "url": _DL + "sam_vit_h_4b8939.pth"},
}
#: shared by every variant (build_sam.py)
COMMON: dict[str, Any] = {"img_size": 1024, "patch_size": 16, "mlp_ratio": 4.0, "qkv_bias": True, "use_rel_pos": True,
                          "window_size": 14, "out_chans": 256}
#: SAM normalises 0–255 pixels with these; divided by 255 for harness's 0–1 images
PIXEL_MEAN = (123.675 / 255, 116.28 / 255, 103.53 / 255)
PIXEL_STD = (58.395 / 255, 57.12 / 255, 57.375 / 255)


def block_name(i: int, n: int) -> str:
    """1-based and zero-padded, so names sort in depth order: block01 … block32."""
    return f"block{i + 1:0{max(2, len(str(n)))}d}"


class SamBackbone(HookedBackbone):
    spec = SAM
    args: SamArgs

    def encoder_config(self) -> dict[str, Any]:
        v = {k: val for k, val in VARIANTS[self.args.variant].items() if k != "url"}
        return {**COMMON, **v, **self.args.config}

    @property
    def preprocess(self) -> Preprocess:
        size = int(self.encoder_config()["img_size"])
        return Preprocess(resize=size, crop=size, interpolation="bilinear", mean=PIXEL_MEAN, std=PIXEL_STD)

    def _source(self) -> WeightSource:
        url = VARIANTS[self.args.variant]["url"]
        return WeightSource(filename=f"segment_anything/{Path(url).name}", url=url)

    def _weights_file(self) -> Path:
        return resolve_weights(self.ctx.entry.name, self._source(), self.ctx.settings, explicit=self.args.weights)

    def weights_reason(self) -> str | None:
        return weights_unavailable(self.ctx.entry.name, self._source(), self.ctx.settings, explicit=self.args.weights)

    def build_module(self) -> nn.Module:
        from segment_anything.modeling import ImageEncoderViT
        from torch import nn

        cfg = self.encoder_config()
        try:
            enc = ImageEncoderViT(norm_layer=partial(nn.LayerNorm, eps=1e-6), **cfg)
        except TypeError as exc:
            raise RegistryError(f"backbone {self.ctx.entry.name!r}: args.config: {exc}") from None
        if not self.ctx.random_init:
            path = self._weights_file()
            sd = load_state_dict(path, self.ctx.entry.name)
            prefix = "image_encoder."
            # the official files hold the whole Sam; an encoder-only file is taken as it is
            enc_sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)} or sd
            load_strict(enc, enc_sd, self.ctx.entry.name, path)
        return enc

    def layer_modules(self) -> dict[str, str]:
        depth = int(self.encoder_config()["depth"])
        taps = {block_name(i, depth): f"blocks.{i}" for i in range(depth)}
        if self.args.neck:
            taps["neck"] = "neck"
        return taps

    def layer_output(self, name: str, out: Any) -> LayerTokens:
        local = out if name == "neck" else out.permute(0, 3, 1, 2)  # blocks are B×H×W×C
        return LayerTokens(local=local, global_=local.mean(dim=(2, 3)))

    def forward_net(self, x: torch.Tensor) -> Any:
        return self.net(x)
