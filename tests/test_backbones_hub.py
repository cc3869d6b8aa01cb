"""Backbones from other libraries (open_clip, transformers, segment-anything, diffusers), offline on CPU.

Every family is built from a small random config and read through harness's own
extraction (``ensure_tokens`` into a private cache); the checks compare with each
library's own forward pass or with a closed-form reference, never with stored numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.cache import TokenCache
from harness.contracts import Stimuli
from harness.errors import PluginMissingError, RegistryError, WeightsMissingError
from harness.extract import ensure_tokens
from tests.helpers import make_factory

pytest.importorskip("open_clip")
pytest.importorskip("transformers")
pytest.importorskip("segment_anything")
pytest.importorskip("diffusers")

TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "patch_size": 8, "image_size": 32}
TINY_SD: dict[str, Any] = {
    "image_size": 32,
    "timesteps": [10, 250],
    "unet_config": {"sample_size": 8, "block_out_channels": [32, 64], "layers_per_block": 1,
                    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32,
                    "attention_head_dim": 8, "norm_num_groups": 8},
    "vae_config": {"block_out_channels": [16, 32], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
                   "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "latent_channels": 4,
                   "norm_num_groups": 8, "sample_size": 32},
    # ids of the tiny tokenizer written in test_sd_pipeline_folder_loads: "" → [BOS, EOS, EOS…]
    "text_config": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "vocab_size": 100, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                    "pad_token_id": 1},
    "scheduler_config": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                         "clip_sample": False, "set_alpha_to_one": False},
}

#: name → (registry entry, expected (n_layers, channels, grid h, grid w) of every layer)
TINY: dict[str, tuple[dict[str, Any], tuple[int, int, int, int]]] = {
    "oc_vit": ({"plugin": "openclip", "random_init": True, "args": {"model": "ViT-B-32", "pretrained": None,
               "vision_overrides": {"width": 32, "layers": 2, "patch_size": 8, "image_size": 32, "head_width": 16}}},
               (2, 32, 4, 4)),
    "oc_timm_vit": ({"plugin": "openclip", "random_init": True, "args": {"model": "ViT-B-16-SigLIP", "pretrained": None,
                    "vision_overrides": {"timm_model_name": "vit_tiny_patch16_224", "image_size": 224}}},
                    (12, 192, 14, 14)),
    "oc_timm_convnext": ({"plugin": "openclip", "random_init": True, "args": {"model": "convnext_base", "pretrained": None,
                         "vision_overrides": {"timm_model_name": "convnext_atto", "image_size": 64}}}, (4, -1, -1, -1)),
    "oc_resnet": ({"plugin": "openclip", "random_init": True, "args": {"model": "RN50", "pretrained": None,
                  "vision_overrides": {"width": 8, "layers": [1, 1, 1, 1], "image_size": 64, "head_width": 8}}},
                  (4, -1, -1, -1)),
    "hf_dinov2": ({"plugin": "hf", "random_init": True, "args": {"family": "dinov2", "image_size": 32,
                  "config": {k: v for k, v in TINY_VIT.items() if k != "intermediate_size"}}}, (2, 32, 4, 4)),
    "hf_dinov2_reg": ({"plugin": "hf", "random_init": True, "args": {"family": "dinov2_registers", "image_size": 32,
                      "config": {**{k: v for k, v in TINY_VIT.items() if k != "intermediate_size"},
                                 "num_register_tokens": 4}}}, (2, 32, 4, 4)),
    "hf_mae": ({"plugin": "hf", "random_init": True, "args": {"family": "vit_mae", "image_size": 32, "config": TINY_VIT}},
               (2, 32, 4, 4)),
    "hf_vit": ({"plugin": "hf", "random_init": True, "args": {"family": "vit", "image_size": 32, "config": TINY_VIT}},
               (2, 32, 4, 4)),
    "hf_clip": ({"plugin": "hf", "random_init": True, "args": {"family": "clip_vision", "image_size": 32,
                "config": TINY_VIT}}, (2, 32, 4, 4)),
    "sam_tiny": ({"plugin": "sam", "random_init": True, "args": {"config": {"depth": 2, "embed_dim": 32, "num_heads": 2,
                 "img_size": 64, "global_attn_indexes": [1], "window_size": 2, "out_chans": 16}}}, (3, -1, 4, 4)),
    "sd_tiny": ({"plugin": "stable_diffusion", "random_init": True, "args": TINY_SD}, (10, -1, -1, -1)),
    "sd_tiny_inv": ({"plugin": "stable_diffusion", "random_init": True,
                     "args": {**TINY_SD, "noise": "ddim_inversion", "inversion_steps": 10}}, (10, -1, -1, -1)),
}


@pytest.fixture
def stimuli2() -> Stimuli:
    """Two non-square images, so resize + centre-crop is exercised."""
    rng = np.random.default_rng(0)
    return Stimuli.from_array(rng.integers(0, 256, size=(2, 40, 56, 3), dtype=np.uint8))


@pytest.fixture
def factory(harness_env: Path):
    return make_factory({"backbones": {n: e for n, (e, _) in TINY.items()}}, harness_env)


@pytest.fixture
def no_weight_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty HF hub / torch hub / open_clip caches, so the test sees this machine as a fresh one."""
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HARNESS_WEIGHTS_ROOT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _batch(bb: Any, stimuli: Stimuli) -> torch.Tensor:
    from harness.kit.images import iter_batches

    return next(iter_batches(stimuli, bb.preprocess, len(stimuli)))[1]


# ----------------------------------------------------------------------------- every family
@pytest.mark.parametrize("name", list(TINY))
def test_family_tokens_through_extraction(name: str, factory: Any, stimuli2: Stimuli, tmp_path: Path) -> None:
    bb = factory.backbone(name)
    assert bb.unavailable_reason() is None
    store = ensure_tokens(bb, stimuli2, TokenCache(tmp_path / "cache"), batch_size=2)
    n_layers, c, h, w = TINY[name][1]
    assert store.layers == bb.layers and len(store.layers) == n_layers
    for layer in store.layers:
        local, glob = store.local(layer), store.global_(layer)
        assert local.shape[0] == glob.shape[0] == 2 and local.ndim == 4 and glob.shape[1] == local.shape[1]
        assert np.isfinite(np.asarray(local, np.float32)).all() and np.isfinite(np.asarray(glob, np.float32)).all()
        for want, got in zip((c, h, w), local.shape[1:], strict=True):
            assert want in (-1, got), f"{name}/{layer}: local {local.shape[1:]} ≠ {(c, h, w)}"
    # the two images are different, so their tokens are
    first = np.asarray(store.local(store.layers[-1]), np.float32)
    assert not np.allclose(first[0], first[1])


def test_openclip_blocks_match_open_clip_intermediates(factory: Any, stimuli2: Stimuli) -> None:
    """Our hooks on transformer.resblocks give what open_clip's own forward_intermediates returns."""
    bb = factory.backbone("oc_vit")
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        ours = bb.tokens(x)
        ref = bb.net.forward_intermediates(x, indices=2, output_fmt="NCHW", intermediates_only=True,
                                           output_extra_tokens=True)
    for i, layer in enumerate(bb.layers):
        torch.testing.assert_close(ours[layer].local, ref["image_intermediates"][i])
        torch.testing.assert_close(ours[layer].global_, ref["image_intermediates_prefix"][i][:, 0])


def test_openclip_checkpoint_loads_visual_part(harness_env: Path, stimuli2: Stimuli, tmp_path: Path) -> None:
    """A full CLIP state_dict (text tower included) loads strictly into the visual tower alone."""
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    vision = {"width": 32, "layers": 2, "patch_size": 8, "image_size": 32, "head_width": 16}
    torch.manual_seed(1)
    clip = CLIP(embed_dim=512, vision_cfg=vision, text_cfg={"width": 32, "layers": 1, "heads": 2, "context_length": 8,
                                                            "vocab_size": 50}).eval()
    ckpt = tmp_path / "tiny_clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(ckpt))
    f = make_factory({"backbones": {"oc_file": {"plugin": "openclip", "args": {
        "model": "ViT-B-32", "pretrained": None, "weights": str(ckpt), "vision_overrides": vision}}}}, harness_env)
    bb = f.backbone("oc_file")
    assert bb.unavailable_reason() is None
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        ours = bb.tokens(x)
        ref = clip.visual.forward_intermediates(x, indices=2, output_fmt="NCHW", intermediates_only=True)
    torch.testing.assert_close(ours["block02"].local, ref["image_intermediates"][1])


def test_openclip_every_listed_pair_is_addressable() -> None:
    import open_clip
    from harness_openclip.openclip_backbone import OpenClipArgs, weight_sources

    pairs = open_clip.list_pretrained()
    assert len(pairs) > 100
    for model, tag in pairs:
        OpenClipArgs(model=model, pretrained=tag)
        assert open_clip.get_model_config(model) is not None, model
        srcs = weight_sources(model, tag)
        assert srcs and all(s.hf_repo or s.url for s in srcs), (model, tag)
        # OpenAI's TorchScript .pt files need unpickling code: never a source
        assert not any(s.url and "openaipublic" in s.url for s in srcs)


def test_openclip_bad_tags_are_named(harness_env: Path) -> None:
    f = make_factory({"backbones": {
        "oc_bad": {"plugin": "openclip", "args": {"model": "ViT-B-32", "pretrained": "nope"}},
        # random weights from an entry not marked random_init would be mislabelled in the leaderboard
        "oc_unlabelled": {"plugin": "openclip", "args": {"model": "ViT-B-32", "pretrained": None}},
    }}, harness_env)
    reason = f.backbone("oc_bad").unavailable_reason()
    assert reason and "'nope' is not a tag of ViT-B-32" in reason and "laion2b_s34b_b79k" in reason
    with pytest.raises(RegistryError, match=r"args\.pretrained"):
        f.backbone("oc_bad").weights_digest()
    reason = f.backbone("oc_unlabelled").unavailable_reason()
    assert reason and "random_init: true" in reason
    with pytest.raises(RegistryError, match="random_init: true"):
        f.backbone("oc_unlabelled").weights_digest()


# ----------------------------------------------------------------------------- transformers
def test_dinov2_registers_are_prefix_tokens(factory: Any, stimuli2: Stimuli) -> None:
    bb = factory.backbone("hf_dinov2_reg")
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        toks = bb.tokens(x)
        hidden = bb.net(pixel_values=x, output_hidden_states=True).hidden_states
    for i, layer in enumerate(bb.layers):
        h = hidden[i + 1]
        assert h.shape[1] == 1 + 4 + 16  # CLS, 4 registers, 4×4 patches
        torch.testing.assert_close(toks[layer].global_, h[:, 0])
        torch.testing.assert_close(toks[layer].local, h[:, 5:].transpose(1, 2).reshape(2, 32, 4, 4))


def test_mae_mask_ratio_zero_is_deterministic_and_keeps_patch_order(factory: Any, stimuli2: Stimuli) -> None:
    bb = factory.backbone("hf_mae")
    net = bb.net
    assert net.config.mask_ratio == 0.0
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        a, b = bb.tokens(x), bb.tokens(x)
        # reference: the encoder on the embeddings in raster order, with no masking code involved
        emb = net.embeddings
        patches = emb.patch_embeddings(x) + emb.position_embeddings[:, 1:]
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(2, -1, -1)
        h = torch.cat([cls, patches], dim=1)
        for i, layer in enumerate(bb.layers):
            torch.testing.assert_close(a[layer].local, b[layer].local, rtol=0, atol=0)
            h = net.layers[i](h)
            h = h[0] if isinstance(h, tuple) else h
            torch.testing.assert_close(a[layer].local, h[:, 1:].transpose(1, 2).reshape(2, 32, 4, 4))
            torch.testing.assert_close(a[layer].global_, h[:, 0])


def test_hf_from_pretrained_folder_equals_built_net(harness_env: Path, stimuli2: Stimuli, tmp_path: Path) -> None:
    """save_pretrained → args.weights loads the same numbers, with MAE's mask_ratio forced to 0 on load."""
    f = make_factory({"backbones": {"mae": TINY["hf_mae"][0]}}, harness_env)
    src = f.backbone("mae")
    folder = tmp_path / "tiny-mae"
    src.net.config.mask_ratio = 0.75  # as the hub configs ship it
    src.net.save_pretrained(folder)
    src.net.config.mask_ratio = 0.0
    f2 = make_factory({"backbones": {"mae_dir": {"plugin": "hf", "args": {"family": "vit_mae", "image_size": 32,
                                                                           "weights": str(folder)}}}}, harness_env)
    bb = f2.backbone("mae_dir")
    assert bb.unavailable_reason() is None
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        ours, ref = bb.tokens(x), src.tokens(x)
    assert bb.net.config.mask_ratio == 0.0
    for layer in bb.layers:
        torch.testing.assert_close(ours[layer].local, ref[layer].local)


# ----------------------------------------------------------------------------- SAM
def test_sam_checkpoint_loads_image_encoder_and_global_is_mean(harness_env: Path, stimuli2: Stimuli,
                                                              tmp_path: Path) -> None:
    args = TINY["sam_tiny"][0]["args"]
    f = make_factory({"backbones": {"sam_r": TINY["sam_tiny"][0]}}, harness_env)
    src = f.backbone("sam_r")
    ckpt = tmp_path / "sam_tiny.pth"  # the official files hold the whole Sam under image_encoder.*
    torch.save({**{f"image_encoder.{k}": v for k, v in src.net.state_dict().items()},
                "mask_decoder.dummy": torch.zeros(1)}, ckpt)
    f2 = make_factory({"backbones": {"sam_f": {"plugin": "sam", "args": {**args, "weights": str(ckpt)}}}}, harness_env)
    bb = f2.backbone("sam_f")
    assert bb.unavailable_reason() is None
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        ours, ref = bb.tokens(x), src.tokens(x)
        neck = src.net(x)
    for layer in bb.layers:
        torch.testing.assert_close(ours[layer].local, ref[layer].local)
        torch.testing.assert_close(ours[layer].global_, ours[layer].local.mean(dim=(2, 3)))
    torch.testing.assert_close(ours["neck"].local, neck)


# ----------------------------------------------------------------------------- Stable Diffusion
def test_sd_layer_order_and_batch_independence(harness_env: Path, stimuli2: Stimuli) -> None:
    block_major = {**TINY_SD, "order": "block_major"}
    f = make_factory({"backbones": {"tm": TINY["sd_tiny"][0],
                                    "bm": {"plugin": "stable_diffusion", "random_init": True, "args": block_major}}},
                     harness_env)
    tm, bm = f.backbone("tm"), f.backbone("bm")
    blocks = ("down0", "down1", "mid", "up0", "up1")
    assert tm.layers == tuple(f"t{t:04d}.{b}" for t in (10, 250) for b in blocks)
    assert bm.layers == tuple(f"t{t:04d}.{b}" for b in blocks for t in (10, 250))
    x = _batch(tm, stimuli2)
    with torch.inference_mode():
        both, first = tm.tokens(x), tm.tokens(x[:1])
        again = bm.tokens(x)
    for layer in tm.layers:
        # one fixed noise map for every image: an image's tokens do not depend on its batch
        torch.testing.assert_close(both[layer].local[:1], first[layer].local, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(both[layer].local, again[layer].local)
    assert not torch.allclose(both["t0010.mid"].local, both["t0250.mid"].local)


def test_sd_add_noise_matches_diffusers_scheduler() -> None:
    from diffusers import DDPMScheduler
    from harness_diffusers.noising import add_noise

    s = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    z, n = torch.randn(3, 4, 8, 8), torch.randn(1, 4, 8, 8)
    for t in (0, 250, 999):
        ref = s.add_noise(z, n.expand_as(z), torch.full((3,), t, dtype=torch.long))
        torch.testing.assert_close(add_noise(z, n, t, s.alphas_cumprod), ref)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_inversion_reaches_closed_form_with_oracle(prediction_type: str) -> None:
    """With a model that predicts the true noise, DDIM inversion lands exactly on √ᾱ_t x̂0 + √(1-ᾱ_t) ε."""
    from diffusers import DDIMScheduler
    from harness_diffusers.noising import add_noise, ddim_inversion, inversion_grid

    alphas = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    g = torch.Generator().manual_seed(0)
    z, eps = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 4, 8, 8, generator=g,
                                                                                     dtype=torch.float64)
    a64 = alphas.double()
    x0 = (z - (1 - a64[0]).sqrt() * eps) / a64[0].sqrt()  # the clean latent the oracle believes in
    seen: dict[int, torch.Tensor] = {}

    def oracle(x: torch.Tensor, t: int, capture: bool) -> torch.Tensor:
        if capture:
            seen[t] = x
        a = a64[t]
        return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0

    targets = [130, 500]
    assert inversion_grid(targets, 50, 1000) == sorted({*range(0, 501, 20), 130})
    assert list(ddim_inversion(z, targets, 50, a64, prediction_type, oracle)) == targets
    for t in targets:
        torch.testing.assert_close(seen[t], add_noise(x0, eps, t, a64))


def _tiny_tokenizer(folder: Path) -> None:
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77).save_pretrained(folder)


def test_sd_pipeline_folder_loads_like_random_init(harness_env: Path, stimuli2: Stimuli, tmp_path: Path) -> None:
    """Components saved in the diffusers layout load back (tokenizer included) to the same features."""
    f = make_factory({"backbones": {"sd_r": TINY["sd_tiny"][0]}}, harness_env)
    src = f.backbone("sd_r")
    p = src.parts
    pipe = tmp_path / "tiny-sd"
    p.unet.save_pretrained(pipe / "unet")
    p.vae.save_pretrained(pipe / "vae")
    p.text.save_pretrained(pipe / "text_encoder")
    p.scheduler.save_pretrained(pipe / "scheduler")
    _tiny_tokenizer(pipe / "tokenizer")
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    args = {k: v for k, v in TINY_SD.items() if not k.endswith("_config")}
    f2 = make_factory({"backbones": {"sd_dir": {"plugin": "stable_diffusion", "args": {**args, "weights": str(pipe)}}}},
                      harness_env)
    bb = f2.backbone("sd_dir")
    assert bb.unavailable_reason() is None
    assert bb.parts.prompt_ids.tolist() == p.prompt_ids.tolist()
    assert bb.weights_digest() == src.weights_digest()
    x = _batch(bb, stimuli2)
    with torch.inference_mode():
        ours, ref = bb.tokens(x), src.tokens(x)
    for layer in bb.layers:
        torch.testing.assert_close(ours[layer].local, ref[layer].local)


# ----------------------------------------------------------------------------- hub entries without weights
#: the registry fragments of the four plugins (make_factory leaves plugin entries out unless asked)
FRAGMENTS = {"plugin_entries": ["openclip", "hf", "sam", "diffusers"]}
HUB_ENTRIES = {  # registry name → a string the missing-weights message must contain
    "clip_vit_b32_openai": "open_clip_model.safetensors",
    "clip_vit_l14_datacomp_xl": "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K",
    "dinov2_vitb14": "facebook/dinov2-base",
    "dinov2_vitg14_reg": "facebook/dinov2-with-registers-giant",
    "mae_vith14": "facebook/vit-mae-huge",
    "vit_b16_in21k_hf": "google/vit-base-patch16-224-in21k",
    "clip_vit_l14_openai_hf": "openai/clip-vit-large-patch14",
    "sam_vit_h": "sam_vit_h_4b8939.pth",
    "sd15_unet": "model_index.json",
    "sd21_unet": "stabilityai--stable-diffusion-2-1",
}


def test_hub_entries_without_weights_are_skipped_cheaply(harness_env: Path, no_weight_caches: None) -> None:
    import time

    from harness.plan import make_plan

    f = make_factory(FRAGMENTS, harness_env)
    t0 = time.perf_counter()
    plan = make_plan(f, backbones=list(HUB_ENTRIES))
    elapsed = time.perf_counter() - t0
    skipped = {s.what.removeprefix("backbone "): s.reason for s in plan.skipped if s.what.startswith("backbone ")}
    assert set(HUB_ENTRIES) <= set(skipped)
    for name, must in HUB_ENTRIES.items():
        reason = skipped[name]
        assert "\n" not in reason and "not available offline" in reason and must in reason, reason
        assert "--random-init" in reason
    assert not plan.jobs and not f._backbones  # nothing was built
    assert elapsed < 30, f"planning {len(HUB_ENTRIES)} missing hub entries took {elapsed:.1f}s"


@pytest.mark.parametrize("name", ["sam_vit_b", "dinov2_vits14", "clip_vit_b16_openai", "sd21_base_unet"])
def test_hub_entry_build_raises_one_line_weights_error(name: str, harness_env: Path, no_weight_caches: None) -> None:
    bb = make_factory(FRAGMENTS, harness_env).backbone(name)
    with pytest.raises(WeightsMissingError) as err:
        bb.weights_digest()  # the first thing extraction needs
    msg = str(err.value)
    assert "\n" not in msg and name in msg and ("put it at" in msg or "put its from_pretrained folder" in msg)


def test_hub_entry_random_init_runs(harness_env: Path, no_weight_caches: None, stimuli2: Stimuli, tmp_path: Path) -> None:
    """--random-init of a hub entry builds its real architecture from the registry's config, with no download."""
    f = make_factory(FRAGMENTS, harness_env)
    entry = f.registry.get("dinov2_vits14").model_copy(update={"random_init": True})
    f.registry.entries["dinov2_vits14"] = entry
    bb = f.backbone("dinov2_vits14")
    assert bb.unavailable_reason() is None
    store = ensure_tokens(bb, stimuli2, TokenCache(tmp_path / "cache"), batch_size=2)
    assert len(store.layers) == 12 and store.shapes()["block12"] == (384, 16, 16)
    assert sum(p.numel() for p in bb.net.parameters()) / 1e6 == pytest.approx(entry.meta["params_m"], abs=0.1)


def test_missing_library_names_the_extra(harness_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.plugins as hp

    real = hp.importlib.util.find_spec
    monkeypatch.setattr(hp.importlib.util, "find_spec", lambda m, *a: None if m == "segment_anything" else real(m, *a))
    f = make_factory(FRAGMENTS, harness_env)
    with pytest.raises(PluginMissingError, match=r"pip install 'harness\[sam\]'"):
        f.backbone("sam_vit_b")


def _n_params_m(bb: Any) -> float:
    """Parameters of what the entry builds (the tapped network only), counted on the meta device: no memory, no init."""
    with torch.device("meta"):
        nets = [bb.parts.unet] if hasattr(bb, "parts") else [bb.net]
    return sum(p.numel() for n in nets for p in n.parameters()) / 1e6


def test_hub_entries_metadata_and_architectures(harness_env: Path, no_weight_caches: None) -> None:
    """Every named entry carries its provenance, and its recorded architecture has the params_m it claims."""
    f = make_factory(FRAGMENTS, harness_env)
    entries = [e for e in f.registry.of_kind("backbone") if e.plugin in ("openclip", "hf", "sam", "stable_diffusion")]
    assert len(entries) >= 35
    for e in entries:
        for key in ("family", "arch", "layers", "params_m", "training_data", "n_train_images", "licence", "citation"):
            assert key in e.meta, f"{e.name}: meta.{key} missing"
        assert e.meta.get("hub_id") or e.meta.get("weights_url"), e.name
        f.registry.entries[e.name] = e.model_copy(update={"random_init": True})
        bb = f.backbone(e.name)
        assert _n_params_m(bb) == pytest.approx(e.meta["params_m"], abs=0.1), e.name
        f.release(e.name)


def test_putting_weights_where_the_message_says_makes_entries_available(harness_env: Path, no_weight_caches: None,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "weights"
    monkeypatch.setenv("HARNESS_WEIGHTS_ROOT", str(root))
    f = make_factory(FRAGMENTS, harness_env)
    names = ["clip_vit_b32_openai", "dinov2_vits14", "sam_vit_b", "sd15_unet"]
    reasons = {n: f.backbone(n).unavailable_reason() for n in names}
    for n, reason in reasons.items():
        assert reason is not None and str(root) in reason, reason
        where = Path(reason.split(" at ", 1)[1].split(" or ")[0].split(" (with")[0].rstrip(","))
        assert where.is_relative_to(root), (n, where)
        marker = {"dinov2_vits14": "config.json", "sd15_unet": "model_index.json"}.get(n)
        target = where / marker if marker else where
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"{}")
        f.release(n)
        assert f.backbone(n).unavailable_reason() is None, n
