"""Where stage outputs come from during training: the cached crop bank, or the live network.

Both give, for a batch of image indices, one tensor per stage (``B×C×g×g``; ``g = 1`` when
only the spatial mean is needed), so the masks and the loss never know which one they see.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from harness.contracts import Backbone, Stimuli
from harness_aggregation.crops import StageBank, crop_normalise, crop_preprocess, pool_stage, resized


class BankSource:
    """Frozen backbone: each epoch draws one of the cached crops of every image."""

    #: the per-step tensors are small (≤ batch × channels × grid²): intra-op threading costs more
    #: than it saves (benchmarks/aggregation_crop_cache.py measured 6–11× slower with 2 threads here)
    train_threads: int | None = 1

    def __init__(self, bank: StageBank, stages: Sequence[str], spatial: bool, device: str) -> None:
        self.bank = bank
        self.feats: list[torch.Tensor] = []
        for s in stages:
            arr = bank.store.local(s) if spatial else bank.store.global_(s)[..., None, None]
            self.feats.append(torch.from_numpy(np.array(arr, np.float32)).to(device))
        self.channels = [int(f.shape[1]) for f in self.feats]
        self.grids = [int(f.shape[-1]) for f in self.feats]
        self.n_images = bank.n_images

    def train_batch(self, images: np.ndarray, rng: np.random.Generator) -> list[torch.Tensor]:
        rows = torch.from_numpy(self.bank.rows(images, rng.integers(0, self.bank.n_crops, len(images))))
        return [f[rows.to(f.device)] for f in self.feats]

    def eval_batches(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        centre = self.bank.rows(np.arange(self.n_images), np.zeros(self.n_images, int))
        for b in range(0, self.n_images, batch_size):
            rows = torch.from_numpy(centre[b : b + batch_size])
            yield [f[rows.to(f.device)] for f in self.feats]

    def parameters(self) -> list[nn.Parameter]:
        return []

    def restore(self) -> None:
        """Nothing to undo: the frozen backbone never changes."""

    @contextmanager
    def training(self) -> Iterator[None]:
        yield


class LiveSource:
    """Stage outputs computed on the fly from fresh random crops at every step.

    ``finetune=True`` is mode ``all``: gradients flow into the backbone. The backbone object is
    shared with other jobs of the run, so its weights are snapshotted first and restored after
    every fit (each fit starts from the pretrained weights). ``finetune=False`` runs the frozen
    net without a crop bank (``n_crops: null``): the baseline the bank is measured against.
    """

    train_threads: int | None = None

    def __init__(self, backbone: Backbone, stimuli: Stimuli, stages: Sequence[str], spatial: bool, grid: int,
                 crop_fraction: float, device: str, finetune: bool) -> None:
        net = backbone.module()
        if finetune and net is None:
            raise TypeError(f"backbone {backbone.ctx.entry.name!r} exposes no torch module to fine-tune (mode: all)")
        self.backbone, self.net, self.finetune = backbone, net, finetune
        self.stages, self.spatial, self.grid, self.device = list(stages), spatial, grid, device
        backbone.to(device)
        self.pre = crop_preprocess(backbone.preprocess, crop_fraction)
        self.images = [resized(stimuli.load(i), self.pre) for i in range(len(stimuli))]
        self.n_images = len(stimuli)
        self._saved = {k: v.detach().clone() for k, v in net.state_dict().items()} if finetune and net else {}
        self._grad = {n: p.requires_grad for n, p in net.named_parameters()} if finetune and net else {}
        with torch.no_grad():
            probe = self._stage_feats(np.array([0]), np.full((1, 2), 0.5))
        self.channels = [int(f.shape[1]) for f in probe]
        self.grids = [int(f.shape[-1]) for f in probe]

    def _stage_feats(self, images: np.ndarray, offsets: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(np.stack([crop_normalise(self.images[i], self.pre, *o) for i, o in zip(images, offsets, strict=True)]))
        with torch.enable_grad() if self.finetune and torch.is_grad_enabled() else torch.no_grad():
            toks = self.backbone.tokens(x.to(self.device))
            return [pool_stage(toks[s].local.float(), self.grid) if self.spatial else toks[s].global_.float()[..., None, None]
                    for s in self.stages]

    def train_batch(self, images: np.ndarray, rng: np.random.Generator) -> list[torch.Tensor]:
        return self._stage_feats(images, rng.uniform(0.0, 1.0, (len(images), 2)))

    def eval_batches(self, batch_size: int) -> Iterator[list[torch.Tensor]]:
        for b in range(0, self.n_images, batch_size):
            idx = np.arange(b, min(b + batch_size, self.n_images))
            yield self._stage_feats(idx, np.full((len(idx), 2), 0.5))

    def parameters(self) -> list[nn.Parameter]:
        if not self.finetune or self.net is None:
            return []
        return [p for p in self.net.parameters() if p.is_floating_point()]

    def restore(self) -> None:
        if not self.finetune or self.net is None:
            return
        self.net.load_state_dict(self._saved)
        for n, p in self.net.named_parameters():
            p.requires_grad_(self._grad[n])
        self.net.eval()

    @contextmanager
    def training(self) -> Iterator[None]:
        """Fine-tuning starts from the pretrained weights; BatchNorm statistics stay frozen (eval mode)."""
        if not self.finetune or self.net is None:
            yield
            return
        self.restore()
        for p in self.parameters():
            p.requires_grad_(True)
        try:
            yield
        finally:
            for n, p in self.net.named_parameters():
                p.requires_grad_(self._grad[n])


FeatureSource = BankSource | LiveSource
