"""Images/s of harness extraction vs a bare forward pass, for the open_clip, transformers, SAM and SD families.

harness : ``ensure_tokens`` into an empty cache: decode + preprocess (PIL), forward with taps at
          every layer, grid pooling, float16 memmap writes; the entry's real code path
bare    : the same network on the same, already preprocessed batches under ``inference_mode``
          (SD: VAE encode + one UNet call per time step), no taps, nothing stored
overhead = bare images/s ÷ harness images/s (1.00 = extraction costs nothing beyond the forward)

Networks are random-init (no weights on this machine); sizes are those of the real architectures
unless the row says otherwise (SAM and SD at reduced input size so a CPU run stays short).
Both timings are the best of ``--repeats`` runs in this process.

Usage: python benchmarks/bench_extraction_hub.py [--n 32] [--batch 16] [--repeats 2] [--only openclip,hf]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SD15_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "projection_dim": 768, "hidden_act": "quick_gelu", "max_position_embeddings": 77,
             "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
SD_VAE = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
          "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 2, "latent_channels": 4}
SD_SCHED = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
            "set_alpha_to_one": False}

#: row label → (family, registry entry, note)
ROWS: dict[str, tuple[str, dict[str, Any], str]] = {
    "openclip ViT-B/32": ("openclip", {"plugin": "openclip", "random_init": True, "args": {"model": "ViT-B-32"}},
                          "224 px, 12 blocks"),
    "hf DINOv2-S/14": ("hf", {"plugin": "hf", "random_init": True, "args": {"family": "dinov2", "config": {
        "hidden_size": 384, "num_attention_heads": 6, "num_hidden_layers": 12, "patch_size": 14, "image_size": 518}}},
        "224 px, 12 blocks"),
    "hf MAE-B/16": ("hf", {"plugin": "hf", "random_init": True, "args": {"family": "vit_mae", "config": {}}},
                    "224 px, 12 blocks, mask_ratio 0"),
    "sam ViT-B @256": ("sam", {"plugin": "sam", "random_init": True, "args": {"variant": "vit_b",
                                                                            "config": {"img_size": 256}}},
                       "ViT-B encoder at 256 px (real: 1024), 12 blocks + neck"),
    "sd1.5 UNet @128": ("diffusers", {"plugin": "stable_diffusion", "random_init": True, "args": {
        "image_size": 128, "timesteps": [250], "unet_config": {"sample_size": 64, "cross_attention_dim": 768},
        "vae_config": SD_VAE, "text_config": SD15_TEXT, "scheduler_config": SD_SCHED}},
        "SD 1.5 UNet+VAE at 128 px (real: 512), 1 t × 9 blocks"),
}


def _bare_sd(bb: Any) -> Callable[[torch.Tensor], Any]:
    from harness_diffusers.noising import add_noise

    def sd(x: torch.Tensor) -> Any:
        z = bb._encode(x)
        ctx = bb._empty_prompt(len(x), z.device, z.dtype)
        noise = torch.randn(1, *z.shape[1:])
        for t in bb.args.timesteps:
            bb.parts.unet(add_noise(z, noise, t, bb.parts.scheduler.alphas_cumprod), torch.full((len(x),), t),
                          encoder_hidden_states=ctx)
    return sd


#: family → the plain forward of its network on a preprocessed batch
BARE: dict[str, Callable[[Any], Callable[[torch.Tensor], Any]]] = {
    "openclip": lambda bb: lambda x: bb.net(x),
    "sam": lambda bb: lambda x: bb.net(x),
    "hf": lambda bb: lambda x: bb.net(pixel_values=x, **bb._forward_kwargs(x)),
    "diffusers": _bare_sd,
}


def bench(label: str, family: str, entry: dict[str, Any], n: int, batch: int, repeats: int, tmp: Path) -> tuple[float, float]:
    from harness.cache import TokenCache
    from harness.contracts import Stimuli
    from harness.extract import ensure_tokens
    from harness.kit.images import iter_batches
    from tests.helpers import make_factory

    f = make_factory({"backbones": {"bench": entry}}, tmp)
    bb = f.backbone("bench")
    rng = np.random.default_rng(0)
    stimuli = Stimuli.from_array(rng.integers(0, 256, size=(n, 256, 256, 3), dtype=np.uint8))
    batches = [b for _, b in iter_batches(stimuli, bb.preprocess, batch)]
    bare = BARE[family](bb)
    with torch.inference_mode():
        bare(batches[0][:2])  # warm-up (lazy init, allocator)
    t_bare, t_harness = float("inf"), float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                bare(b)
        t_bare = min(t_bare, time.perf_counter() - t0)
        cache = TokenCache(tmp / f"cache-{label.replace(' ', '_').replace('/', '_')}-{r}")
        t0 = time.perf_counter()
        ensure_tokens(bb, stimuli, cache, batch_size=batch)
        t_harness = min(t_harness, time.perf_counter() - t0)
    return n / t_bare, n / t_harness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated families: openclip,hf,sam,diffusers")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU fp32, n={args.n} images of 256×256, "
          f"batch {args.batch}, best of {args.repeats}")
    print(f"{'row':<20} {'bare img/s':>11} {'harness img/s':>14} {'overhead':>9}  note")
    with tempfile.TemporaryDirectory() as d:
        os.environ["HARNESS_HOME"] = f"{d}/home"
        for label, (family, entry, note) in ROWS.items():
            if only and family not in only:
                continue
            bare, harness = bench(label, family, entry, args.n, args.batch, args.repeats, Path(d))
            print(f"{label:<20} {bare:11.2f} {harness:14.2f} {bare / harness:8.2f}x  {note}", flush=True)


if __name__ == "__main__":
    main()
