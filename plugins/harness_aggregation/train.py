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


@dataclass
class Fitted:
    model: StageAggregator
    losses: list[float] = field(default_factory=list)  #: mean training loss per epoch
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


def fit(source: FeatureSource, rdms: np.ndarray, cfg: TrainConfig, seed: int, device: str = "cpu",
        images: np.ndarray | None = None) -> Fitted:
    """Train on training subjects' RDMs ``S×n×n`` over the source's stimuli ``images`` (default: all, in order).

    Within a batch every image pair is one loss term per subject, weighted by the entry's
    reliability; the live backbone (if any) is restored to its pretrained weights afterwards.
    Returns the model and its centre-crop embedding of *every* stimulus of the source.
    """
    with intra_op_threads(source.train_threads if device == "cpu" else None):
        return _fit(source, rdms, cfg, seed, device, images)


def _fit(source: FeatureSource, rdms: np.ndarray, cfg: TrainConfig, seed: int, device: str,
         images: np.ndarray | None) -> Fitted:
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    model = StageAggregator(source.channels, source.grids, cfg.masks, cfg.pool, cfg.normalize).to(device)
    weights = torch.from_numpy(reliability_weights(rdms, cfg.alpha, cfg.beta).astype(np.float32)).to(device)
    targets = torch.from_numpy(np.asarray(rdms, np.float32)).to(device)
    n = targets.shape[-1]
    images = np.arange(n) if images is None else np.asarray(images)
    if len(images) != n:
        raise ValueError(f"{len(images)} stimulus indices for RDMs over {n} stimuli")
    out = Fitted(model=model)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    if source.parameters():
        groups.append({"params": source.parameters(), "lr": cfg.backbone_lr})
    trainable = any(g["params"] for g in groups)
    with source.training():
        if cfg.epochs > 0 and trainable:
            opt = torch.optim.Adam([g for g in groups if g["params"]])
            for _ in range(cfg.epochs):
                perm = rng.permutation(n)
                total, count = 0.0, 0
                for b in range(0, n, cfg.batch_size):
                    idx = np.sort(perm[b : b + cfg.batch_size])
                    if len(idx) < 2:
                        continue
                    iu = np.triu_indices(len(idx), k=1)
                    rows, cols = torch.from_numpy(idx[iu[0]]).to(device), torch.from_numpy(idx[iu[1]]).to(device)
                    pred = correlation_distance(model(source.train_batch(images[idx], rng)))[iu[0], iu[1]]
                    loss = rdm_loss(pred, targets[:, rows, cols], weights[rows, cols], cfg.loss)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(iu[0])
                    count += len(iu[0])
                out.losses.append(total / max(count, 1))
        with torch.no_grad():
            model.eval()
            out.embedding = torch.cat([model(f) for f in source.eval_batches(cfg.batch_size)]).double().cpu().numpy()
    source.restore()
    return out
