"""The shared training loop and the trained token heads on small random data (fast, CPU).

Recovery of planted truth is in test_factortopy_recovery.py; here: the voxel
chunking gives the unchunked gradients, streamed and preloaded tokens agree, the
soup averages, outputs are shaped and deterministic, bad input fails clearly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from harness_factortopy.factortopy_head import FactorTopyHead
from harness_factortopy.model import CoordSelectors, FactorTopyNet, FreeSelectors, selector_outputs
from harness_factortopy.positional import sinusoidal_encoding
from harness_heads.gnet_head import GNetHead
from harness_heads.token_heads import ClassTokenHead, PatchTokenHead

from harness.cache import TokenCache
from harness.contracts import BuildContext, HeadInput, Stimuli, TokenStore, VoxelTargets
from harness.errors import DataError
from harness.kit.token_source import TokenSource
from harness.kit.training import _soup, train_step
from harness.plugins import default_catalog
from harness.registry import load_registry
from harness.settings import load_settings
from harness.specs import RegistryEntry

LAYERS = ("a", "b", "c")
SHAPES = {"a": (6, 8, 8), "b": (10, 4, 4), "c": (12, 2, 2)}


def random_store(root: Path, n: int = 40, seed: int = 0) -> TokenStore:
    rng = np.random.default_rng(seed)
    cache = TokenCache(root)
    with cache.writer(f"rand{seed}{n}", LAYERS, n, {"backbone": "random"}) as w:
        for layer in LAYERS:
            c, h, ww = SHAPES[layer]
            loc = rng.standard_normal((n, c, h, ww)).astype(np.float16) * (1 + LAYERS.index(layer))
            w.write(0, layer, loc, loc.mean((2, 3)))
    store = cache.get(f"rand{seed}{n}")
    assert store is not None
    return store


def random_targets(store: TokenStore, n_vox: int = 9, coords: bool = True, seed: int = 1) -> VoxelTargets:
    """Responses driven by the tokens (so training has signal), voxel table with or without x, y, z."""
    rng = np.random.default_rng(seed)
    x = np.asarray(store.local("a"), np.float32)[:, :, 2, 5]  # one location of layer a
    y = x @ rng.standard_normal((x.shape[1], n_vox)) + 0.3 * rng.standard_normal((store.n, n_vox))
    table = {"voxel_id": [f"v{i}" for i in range(n_vox)], "roi": ["V1"] * (n_vox // 2) + ["V2"] * (n_vox - n_vox // 2)}
    if coords:
        table |= {"x": rng.uniform(0, 10, n_vox), "y": rng.uniform(0, 10, n_vox), "z": np.zeros(n_vox)}
    idx = np.arange(store.n)
    return VoxelTargets(responses=y.astype(np.float32), train_idx=idx[: store.n - 10], test_idx=idx[store.n - 10:],
                        voxels=pd.DataFrame(table))


def build(cls: type, args: dict | None = None, name: str = "h") -> object:
    entry = RegistryEntry(name=name, kind="head", plugin=cls.spec.id, args=args or {})
    return cls(cls.spec.args(**(args or {})), BuildContext(entry=entry, settings=load_settings()))


def head_input(store: TokenStore, targets: VoxelTargets) -> HeadInput:
    stim = Stimuli(ids=tuple(str(i) for i in range(store.n)), load=lambda i: None, digest="x")  # type: ignore[arg-type,return-value]
    return HeadInput(targets=targets, stimuli=stim, tokens=store, device="cpu", seed=0)


def small_net(source: TokenSource, n_vox: int, topology: bool, **kw: object) -> FactorTopyNet:
    outs, init = selector_outputs(len(LAYERS), kw.get("layer_mode", "learned"), kw.get("space_mode", "learned"),  # type: ignore[arg-type]
                                  kw.get("scale_mode", "learned"), int(kw.get("space_samples", 1)))  # type: ignore[arg-type]
    if topology:
        pe = torch.from_numpy(sinusoidal_encoding(np.random.default_rng(0).uniform(0, 5, (n_vox, 3)), 4))
        sel: torch.nn.Module = CoordSelectors(pe, outs, 16, init)
    else:
        sel = FreeSelectors(n_vox, outs, init)
    return FactorTopyNet(source.shapes(), n_vox, sel, bottleneck=8, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("topology", [True, False])
@pytest.mark.parametrize("space_mode", ["learned", "mean"])
def test_voxel_chunking_gives_the_unchunked_gradients(tmp_path: Path, topology: bool, space_mode: str) -> None:
    store = random_store(tmp_path)
    src = TokenSource.from_store(store, np.arange(store.n), np.arange(30), "cpu")
    torch.manual_seed(0)
    net = small_net(src, 11, topology, space_mode=space_mode, space_samples=1 if space_mode == "mean" else 3)
    with torch.no_grad():  # move the selectors off their symmetric start so every gradient is non-trivial
        for p in net.selectors.parameters():
            p.add_(0.3 * torch.randn_like(p))
    y = torch.randn(16, 11)
    batch = src.batch(np.arange(16))
    grads = []
    for chunk in (11, 4, 1):
        net.zero_grad()
        loss = train_step(net, batch, y, chunk, 0.1, reg_weight=0.05)
        grads.append((float(loss), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}))
    ref_loss, ref = grads[0]
    assert len(ref) == len(list(net.parameters()))
    for loss, g in grads[1:]:
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        for name, t in ref.items():
            torch.testing.assert_close(g[name], t, rtol=1e-4, atol=1e-6, msg=name)


def test_streamed_and_preloaded_tokens_agree(tmp_path: Path) -> None:
    store = random_store(tmp_path)
    need, stats = np.arange(store.n), np.arange(25)
    pre = TokenSource.from_store(store, need, stats, "cpu", grid=3)
    stream = TokenSource.from_store(store, need, stats, "cpu", grid=3, budget_bytes=0)
    assert pre.preloaded and not stream.preloaded
    assert pre.shapes() == stream.shapes() == [(6, 3, 3), (10, 3, 3), (12, 2, 2)]
    idx = np.array([7, 3, 30, 0])
    for a, b in zip(pre.batch(idx), stream.batch(idx), strict=True):
        torch.testing.assert_close(a.local, b.local, atol=2e-3, rtol=1e-3)  # preload rounds pooled maps to float16
        torch.testing.assert_close(a.global_, b.global_)
    # standardised with the statistics of the training stimuli
    full = pre.batch(stats)
    assert float(full[2].global_.mean(0).abs().max()) < 1e-3
    assert float((full[2].global_.std(0) - 1).abs().max()) < 1e-2


def test_channel_pcs_project_onto_the_fit_stimuli_principal_directions(tmp_path: Path) -> None:
    """The projection is numpy's eigendecomposition of the standardised tokens of the ``stats_idx`` stimuli
    only (the reference uses those alone), the same for preloaded and streamed tokens, saved with the statistics."""
    store = random_store(tmp_path)
    need, stats = np.arange(store.n), np.arange(25)
    base = TokenSource.from_store(store, need, stats, "cpu", grid=3, budget_bytes=0)
    pre = TokenSource.from_store(store, need, stats, "cpu", grid=3, pcs=4)
    stream = TokenSource.from_store(store, need, stats, "cpu", grid=3, budget_bytes=0, pcs=4)
    assert pre.shapes() == stream.shapes() == [(4, 3, 3), (4, 3, 3), (4, 2, 2)]
    idx = np.array([7, 3, 30, 0])
    for layer, (a, b, raw) in enumerate(zip(pre.batch(idx), stream.batch(idx), base.batch(idx), strict=True)):
        torch.testing.assert_close(a.local, b.local, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(a.global_, b.global_, atol=1e-4, rtol=1e-4)
        # independent reference: top eigenvectors of the fit stimuli's channel covariance (numpy, float64)
        x = base.batch(stats)[layer].local.permute(0, 2, 3, 1).reshape(-1, raw.local.shape[1]).double().numpy()
        vals, vecs = np.linalg.eigh(x.T @ x / len(x))
        ref = vecs[:, ::-1][:, :4]
        got = pre.stats()[f"tokens.{layer}.pcs"].double().numpy()
        np.testing.assert_allclose(np.abs(got.T @ ref), np.eye(4), atol=1e-4)  # same directions up to sign
        proj = torch.einsum("nchw,ck->nkhw", raw.local, pre.stats()[f"tokens.{layer}.pcs"])
        torch.testing.assert_close(b.local, proj, atol=1e-4, rtol=1e-4)


def test_a_negative_regulariser_weight_is_applied(tmp_path: Path) -> None:
    store = random_store(tmp_path)
    src = TokenSource.from_store(store, np.arange(store.n), np.arange(30), "cpu")
    torch.manual_seed(0)
    net = small_net(src, 5, topology=True)
    batch, y = src.batch(np.arange(8)), torch.randn(8, 5)
    reg = float(net.regulariser(slice(0, 5)).detach())  # type: ignore[union-attr]
    base = float(train_step(net, batch, y, 5, 0.1, reg_weight=0.0))
    neg = float(train_step(net, batch, y, 5, 0.1, reg_weight=-0.5))
    assert reg < 0 and neg == pytest.approx(base - 0.5 * reg, rel=1e-5)


def test_soup_is_the_uniform_weight_average() -> None:
    s1 = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    s2 = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(3)}
    out = _soup([s1, s2])
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 4.0]))
    assert int(out["n"]) == 3


def test_positional_encoding_is_smooth_and_isotropic() -> None:
    c = np.array([[0.0, 0, 0], [0.1, 0, 0], [5.0, 0, 0], [0, 0.1, 0], [10.0, 10, 10]])
    pe = sinusoidal_encoding(c, n_freq=8)
    assert pe.shape == (5, 3 * 2 * 8)
    near, far = np.linalg.norm(pe[0] - pe[1]), np.linalg.norm(pe[0] - pe[2])
    assert near < far
    # one span for every axis: a step along x and the same step along y move the encoding equally
    assert np.linalg.norm(pe[0] - pe[3]) == pytest.approx(near, rel=1e-5)


@pytest.mark.parametrize(("cls", "args"), [
    (FactorTopyHead, {}),
    (FactorTopyHead, {"layer_selection": "uniform", "space_selection": "mean", "scale_selection": "fixed"}),
    (FactorTopyHead, {"topology": "free", "space_samples": 3}),
    (ClassTokenHead, {}),
    (PatchTokenHead, {"grid": 2}),
    (GNetHead, {}),
])
def test_trained_heads_predict_and_report_selections(tmp_path: Path, cls: type, args: dict) -> None:
    store = random_store(tmp_path)
    t = random_targets(store)
    run_args = {"max_steps": 20, "eval_every": 5, "batch_size": 8, "voxel_chunk": 4, **args}
    out = build(cls, run_args).fit_predict(head_input(store, t))  # type: ignore[attr-defined]
    assert out.predictions.shape == (10, 9)
    assert np.isfinite(out.predictions).all()
    assert out.info["steps"] <= 20
    if out.info["soup_used"]:  # the soup is kept only when it validates at least as well as the best checkpoint
        assert out.info["val_r_final"] >= out.info["val_r_best"]
    if not args:  # fixed seeds: the same run twice gives the same predictions
        again = build(cls, run_args).fit_predict(head_input(store, t))  # type: ignore[attr-defined]
        np.testing.assert_allclose(out.predictions, again.predictions, rtol=1e-5, atol=1e-6)
    if out.layer_weights is not None:
        assert out.layer_weights.shape == (9, 3)
        np.testing.assert_allclose(out.layer_weights.sum(1), 1.0, atol=1e-6)
    kinds = {s["selector"] for s in out.selections}
    for s in out.selections:
        if s["selector"] in ("space_x", "space_y", "scale"):
            assert 0.0 <= s["value"] <= 1.0
    if cls is FactorTopyHead:
        assert ("space_x" in kinds) == (args.get("space_selection", "learned") == "learned")
        assert ("scale" in kinds) == (args.get("scale_selection", "learned") == "learned")
        n_space = sum(s["selector"] == "space_x" for s in out.selections)
        assert n_space == (9 * args.get("space_samples", 1) if "space_x" in kinds else 0)
        assert out.info["topology"] == ("free" if args.get("topology") == "free" else "coords")


def test_factortopy_topology_without_coordinates(tmp_path: Path) -> None:
    store = random_store(tmp_path)
    t = random_targets(store, coords=False)
    short = {"max_steps": 10, "eval_every": 5, "batch_size": 8}
    out = build(FactorTopyHead, short).fit_predict(head_input(store, t))  # type: ignore[attr-defined]
    assert out.info["topology"].startswith("free")
    with pytest.raises(DataError, match=r"'h'.*x, y, z"):
        build(FactorTopyHead, {**short, "topology": "coords"}).fit_predict(head_input(store, t))  # type: ignore[attr-defined]


def test_trained_heads_reject_rdm_targets(tmp_path: Path) -> None:
    from harness.contracts import RDMTargets

    store = random_store(tmp_path)
    rdm = RDMTargets(rdms={"IT": np.zeros((2, store.n, store.n))}, subject_ids=["s1", "s2"])
    with pytest.raises(DataError, match="voxel targets"):
        build(ClassTokenHead).fit_predict(head_input(store, rdm))  # type: ignore[arg-type,attr-defined]


def test_registry_entries_for_factortopy_ablations_and_baselines(tmp_path: Path) -> None:
    reg = load_registry(default_catalog(), None, load_settings())
    heads = {e.name: e for e in reg.of_kind("head")}
    expect = {
        "factortopy": {}, "factortopy_no_layer": {"layer_selection": "uniform"},
        "factortopy_no_space": {"space_selection": "mean"}, "factortopy_no_scale": {"scale_selection": "fixed"},
        "factortopy_no_topology": {"topology": "free"}, "factortopy_space3": {"space_samples": 3},
        "ridge_concat": {"layer_mode": "concat"}, "classtoken": {}, "patchtoken": {}, "gnet": {},
    }
    for name, args in expect.items():
        assert name in heads, name
        assert heads[name].args == args
    # every head and ablation of the paper is crossed by `run --all`; only the GPU-length schedule is not
    assert all(heads[n].in_all for n in expect) and not heads["factortopy_paper"].in_all
    assert heads["factortopy_paper"].args["entropy_decay_steps"] == 6000


def test_free_selectors_get_their_own_learning_rate(tmp_path: Path) -> None:
    """Without topology the per-voxel selector logits learn at free_lr × lr (each parameter in one group)."""
    store = random_store(tmp_path)
    src = TokenSource.from_store(store, np.arange(store.n), np.arange(30), "cpu")
    outs, init = selector_outputs(len(LAYERS), "learned", "learned", "learned", 1)
    net = FactorTopyNet(src.shapes(), 5, FreeSelectors(5, outs, init), bottleneck=8, free_lr=30.0)
    groups = net.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(3e-2)]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.selectors.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    coord = small_net(src, 5, topology=True)
    assert len(coord.param_groups(1e-3)) == 1  # the coordinate MLPs share the base rate


def test_channel_selector_gets_its_own_learning_rate(tmp_path: Path) -> None:
    """readout_lr ≠ 1 puts the per-voxel channel selector in its own group, with or without topology."""
    store = random_store(tmp_path)
    src = TokenSource.from_store(store, np.arange(store.n), np.arange(30), "cpu")
    outs, init = selector_outputs(len(LAYERS), "learned", "learned", "learned", 1)
    net = FactorTopyNet(src.shapes(), 5, FreeSelectors(5, outs, init), bottleneck=8, free_lr=30.0, readout_lr=10.0)
    groups = net.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(3e-2), pytest.approx(1e-2)]
    assert groups[2]["params"] == [net.weight]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert len({id(p) for g in groups for p in g["params"]}) == len(list(net.parameters()))  # each in one group
    coord = small_net(src, 5, topology=True, readout_lr=10.0)
    assert [g["lr"] for g in coord.param_groups(1e-3)] == [1e-3, pytest.approx(1e-2)]


def test_standardisation_floors_nearly_dead_channels() -> None:
    """A channel that is 0 on the statistics sample and 6 on one other image (a ReLU6 unit that rarely fires)
    must not become a 10^4-sigma outlier; ordinary channels still come out with unit SD."""
    from harness.kit.token_source import SD_FLOOR, TokenSource

    rng = np.random.default_rng(0)
    g = rng.normal(2.0, 0.5, (200, 16)).astype(np.float32)
    g[:, 3] = 0.0
    g[150, 3] = 6.0  # outside the statistics sample (the first 100 rows)
    g[:, 5] = 1.0
    g[:100:7, 5] += 1e-3  # nearly constant on the statistics sample
    src = TokenSource.from_tensors(["l"], [None], [torch.from_numpy(g)], "cpu", stats_idx=np.arange(100))
    z = src.batch(np.arange(200))[0].global_.double().numpy()
    ref_sd = g[:100].std(0, ddof=1)
    floor = SD_FLOOR * np.sort(ref_sd)[(len(ref_sd) - 1) // 2]  # torch's median: the lower middle value
    assert np.abs(z).max() <= 1.01 * 6.0 / floor and np.abs(z).max() < 200  # unfloored: 6 / ~0 = inf
    ordinary = [c for c in range(16) if c not in (3, 5)]
    np.testing.assert_allclose(z[:100, ordinary].std(0, ddof=1), 1.0, atol=2e-3)  # float16 preload rounding
