"""Fitting the masks (and, in ``all`` mode, the backbone) to training subjects' RDMs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from harness_aggregation.loss import LossKind, rdm_loss, reliability_weights
from harness_aggregation.model import MaskKind, Normalize, StageAggregator, correlation_distance
from harness_aggregation.sources import FeatureSource


@dataclass(frozen=True)
class TrainConfig:
    masks: tuple[MaskKind, ...]
    pool: int
    normalize: Normalize
    loss: LossKind = "l1"
    alpha: float = 0.25
    beta: float = 1.0
    lr: float = 0.01
    backbone_lr: float = 1e-4
    batch_size: int = 40
    epochs: int = 20
    #: SD (fraction of the interval) of the Gaussian that draws each batch's MEG time point (with time RDMs)
    time_sd: float = 0.25
    #: weight of the Gaussian prior that pulls every learned mask toward 1 (the identity, i.e. the untrained
    #: model): λ · mean over mask entries of (m − 1)²; few training images cannot then move many masks far
    mask_decay: float = 0.0
    #: weight of the Laplace (sparsity) prior on the channel and location masks: λ · mean |m|
    mask_l1: float = 0.0
    #: fraction of each training block's images held out for early stopping (0: none); the model kept is the
    #: epoch with the lowest loss on the RDM among the held-out images (centre crops)
    val_fraction: float = 0.0


def sample_time_index(rng: np.random.Generator, n_time: int, sd_fraction: float) -> int:
    """A time sample drawn from a Gaussian centred on the interval's middle (SD = ``sd_fraction`` × length),
    redrawn until it falls inside: Gaziv (2019) samples MEG time points toward the middle of the interval."""
    if n_time <= 1:
        return 0
    mid, sd = (n_time - 1) / 2, max(sd_fraction * n_time, 1e-9)
    while True:
        t = round(rng.normal(mid, sd))
        if 0 <= t < n_time:
            return t


@dataclass
class Fitted:
    model: StageAggregator
    losses: list[float] = field(default_factory=list)  #: mean training loss per epoch
    val_losses: list[float] = field(default_factory=list)  #: held-out-image loss after each epoch (early stopping)
    best_epoch: int | None = None  #: epoch kept by early stopping (0: the untrained model)
    embedding: np.ndarray | None = None  #: centre-crop embedding of every image, ``N×D``


@contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """Temporarily cap torch's CPU threads (None: leave as is)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class TrainBlock:
    """Training RDMs over one image set: subjects ``S×n×n`` over the source's stimuli ``images``; optional
    time-resolved ``S×T×n×n`` (MEG). Several blocks (e.g. the 92 and 118 sets, each with its own subjects)
    train one model together: each batch is drawn from one block."""

    rdms: np.ndarray
    images: np.ndarray
    time_rdms: np.ndarray | None = None


def fit(source: FeatureSource, rdms: np.ndarray, cfg: TrainConfig, seed: int, device: str = "cpu",
        images: np.ndarray | None = None, time_rdms: np.ndarray | None = None) -> Fitted:
    """Train on training subjects' RDMs ``S×n×n`` over the source's stimuli ``images`` (default: all, in order).

    Within a batch every image pair is one loss term per subject, weighted by the entry's
    reliability; the live backbone (if any) is restored to its pretrained weights afterwards.
    With ``time_rdms`` (``S×T×n×n``, MEG) each batch's targets are the RDMs of one time point drawn
    by :func:`sample_time_index`; the reliability weights stay those of ``rdms`` (the interval mean).
    Returns the model and its centre-crop embedding of *every* stimulus of the source.
    """
    n = np.asarray(rdms).shape[-1]
    block = TrainBlock(np.asarray(rdms), np.arange(n) if images is None else np.asarray(images), time_rdms)
    return fit_blocks(source, [block], cfg, seed, device)


def fit_blocks(source: FeatureSource, blocks: list[TrainBlock], cfg: TrainConfig, seed: int,
               device: str = "cpu") -> Fitted:
    """:func:`fit` on one or several training blocks (image sets with their own subjects)."""
    with intra_op_threads(source.train_threads if device == "cpu" else None):
        return _fit(source, blocks, cfg, seed, device)


@dataclass
class _Prepared:
    targets: torch.Tensor
    weights: torch.Tensor
    timed: torch.Tensor | None
    images: np.ndarray


def _prepare(b: TrainBlock, cfg: TrainConfig, device: str) -> _Prepared:
    weights = torch.from_numpy(reliability_weights(b.rdms, cfg.alpha, cfg.beta).astype(np.float32)).to(device)
    targets = torch.from_numpy(np.asarray(b.rdms, np.float32)).to(device)
    timed = None if b.time_rdms is None else torch.from_numpy(np.asarray(b.time_rdms, np.float32)).to(device)
    if timed is not None and (timed.ndim != 4 or timed.shape[0] != targets.shape[0] or timed.shape[2:] != targets.shape[1:]):
        raise ValueError(f"time-resolved RDMs {tuple(timed.shape)} do not match RDMs {tuple(targets.shape)} (S×T×n×n)")
    if len(b.images) != targets.shape[-1]:
        raise ValueError(f"{len(b.images)} stimulus indices for RDMs over {targets.shape[-1]} stimuli")
    return _Prepared(targets, weights, timed, np.asarray(b.images))


def _fit(source: FeatureSource, blocks: list[TrainBlock], cfg: TrainConfig, seed: int, device: str) -> Fitted:
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    model = StageAggregator(source.channels, source.grids, cfg.masks, cfg.pool, cfg.normalize).to(device)
    prepared = [_prepare(b, cfg, device) for b in blocks]
    out = Fitted(model=model)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    if source.parameters():
        groups.append({"params": source.parameters(), "lr": cfg.backbone_lr})
    trainable = any(g["params"] for g in groups)
    train_pos, val_pos = _split(prepared, cfg.val_fraction, rng)
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    with source.training():
        if cfg.epochs > 0 and trainable:
            opt = torch.optim.Adam([g for g in groups if g["params"]])
            if val_pos:
                best = (_val_loss(model, source, prepared, val_pos, cfg), _snapshot(model))
                out.val_losses.append(best[0])
                out.best_epoch = 0
            for epoch in range(cfg.epochs):
                batches = []
                for bi, pos in enumerate(train_pos):
                    perm = pos[rng.permutation(len(pos))]
                    batches += [(bi, np.sort(perm[b : b + cfg.batch_size])) for b in range(0, len(pos), cfg.batch_size)]
                if len(prepared) > 1:  # interleave the image sets' batches
                    batches = [batches[i] for i in rng.permutation(len(batches))]
                total, count = 0.0, 0
                for bi, idx in batches:
                    if len(idx) < 2:
                        continue
                    p = prepared[bi]
                    iu = np.triu_indices(len(idx), k=1)
                    rows, cols = torch.from_numpy(idx[iu[0]]).to(device), torch.from_numpy(idx[iu[1]]).to(device)
                    pred = correlation_distance(model(source.train_batch(p.images[idx], rng)))[iu[0], iu[1]]
                    now = p.targets if p.timed is None else p.timed[:, sample_time_index(rng, p.timed.shape[1], cfg.time_sd)]
                    loss = rdm_loss(pred, now[:, rows, cols], p.weights[rows, cols], cfg.loss)
                    loss = loss + model.prior(cfg.mask_decay, cfg.mask_l1)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(iu[0])
                    count += len(iu[0])
                out.losses.append(total / max(count, 1))
                if val_pos:
                    v = _val_loss(model, source, prepared, val_pos, cfg)
                    out.val_losses.append(v)
                    if best is not None and v < best[0]:
                        best, out.best_epoch = (v, _snapshot(model)), epoch + 1
            if best is not None:
                model.load_state_dict(best[1])
        with torch.no_grad():
            model.eval()
            out.embedding = torch.cat([model(f) for f in source.eval_batches(cfg.batch_size)]).double().cpu().numpy()
    source.restore()
    return out


def _split(prepared: list[_Prepared], fraction: float, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per block: positions trained on and positions held out for early stopping (none when ``fraction`` is 0)."""
    if fraction <= 0:
        return [np.arange(p.targets.shape[-1]) for p in prepared], []
    train, val = [], []
    for p in prepared:
        n = p.targets.shape[-1]
        n_val = round(fraction * n)
        if not 2 <= n_val <= n - 2:
            raise ValueError(f"val_fraction {fraction} leaves {n_val} of {n} images for early stopping (need 2 … n − 2)")
        perm = rng.permutation(n)
        train.append(np.sort(perm[n_val:]))
        val.append(np.sort(perm[:n_val]))
    return train, val


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _val_loss(model: StageAggregator, source: FeatureSource, prepared: list[_Prepared], val_pos: list[np.ndarray],
              cfg: TrainConfig) -> float:
    """Loss on the RDM among each block's held-out images (centre crops, interval-mean targets), pair-weighted."""
    with torch.no_grad():
        was = model.training
        model.eval()
        emb = torch.cat([model(f) for f in source.eval_batches(cfg.batch_size)])
        model.train(was)
        total, count = 0.0, 0
        for p, pos in zip(prepared, val_pos, strict=True):
            iu = np.triu_indices(len(pos), k=1)
            pred = correlation_distance(emb[torch.from_numpy(p.images[pos]).to(emb.device)])[iu[0], iu[1]]
            rows, cols = torch.from_numpy(pos[iu[0]]).to(emb.device), torch.from_numpy(pos[iu[1]]).to(emb.device)
            total += float(rdm_loss(pred, p.targets[:, rows, cols], p.weights[rows, cols], cfg.loss)) * len(iu[0])
            count += len(iu[0])
    return total / max(count, 1)
