"""The fine-tuning loop: any backbone with a torch ``module()`` plus a linear classifier on one layer's global token.

The network is read through :meth:`Backbone.tokens`, the same path the token cache
uses, so what is trained is exactly what the heads later see. Nothing is written
here: the caller saves the result only after the loop has finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from harness.contracts import Backbone, LabelledImages, Stimuli
from harness.errors import HarnessError
from harness.kit.images import preprocess_image
from harness.specs import Preprocess
from harness_finetune.probe import LinearProbe, accuracy, fit_probe
from harness_finetune.recipe import FinetuneConfig
from harness_finetune.tasks import split_per_class

#: ``progress(step, steps, loss)`` after every optimiser step; raising from it aborts the fine-tune cleanly
StepCallback = Callable[[int, int, float], None]


@dataclass
class FinetuneOutcome:
    state_dict: dict[str, torch.Tensor]  #: the fine-tuned backbone module, CPU copies
    classifier: dict[str, torch.Tensor]  #: ``weight`` K×D, ``bias`` K
    layer: str
    probe_accuracy: float  #: frozen backbone + linear probe, validation images
    start_accuracy: float  #: the fine-tune's classifier before the first step (= probe with ``head_init=probe``)
    val_accuracy: float  #: after fine-tuning
    n_train: int
    n_val: int
    train_counts: dict[str, int]
    val_counts: dict[str, int]
    curve: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0


def image_batch(stimuli: Stimuli, pre: Preprocess, idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([preprocess_image(stimuli.load(int(i)), pre) for i in idx]))


def global_tokens(backbone: Backbone, layer: str, stimuli: Stimuli, pre: Preprocess, idx: np.ndarray,
                  batch_size: int, device: str) -> np.ndarray:
    out = []
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            x = image_batch(stimuli, pre, idx[s : s + batch_size]).to(device)
            out.append(backbone.tokens(x)[layer].global_.float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Endless stream of batches over reshuffled epochs (a short last batch is topped up from the next epoch)."""
    rng = np.random.default_rng([seed, 1])
    buf = np.empty(0, np.int64)
    while True:
        while len(buf) < batch_size:
            buf = np.concatenate([buf, rng.permutation(n)])
        yield buf[:batch_size]
        buf = buf[batch_size:]


def _evaluate(backbone: Backbone, head: nn.Module, layer: str, stimuli: Stimuli, pre: Preprocess, idx: np.ndarray,
              y: np.ndarray, batch_size: int, device: str) -> float:
    f = global_tokens(backbone, layer, stimuli, pre, idx, batch_size, device)
    with torch.no_grad():
        logits = head(torch.from_numpy(f).float().to(device)).cpu().numpy()
    return accuracy(logits.argmax(1), y)


def _init_head(head: nn.Linear, probe: LinearProbe, how: str) -> None:
    with torch.no_grad():
        if how == "probe":
            w, b = probe.raw_weights()
            head.weight.copy_(torch.from_numpy(w))
            head.bias.copy_(torch.from_numpy(b))
        else:
            head.weight.zero_()
            head.bias.zero_()


def finetune(backbone: Backbone, data: LabelledImages, cfg: FinetuneConfig, device: str = "cpu",
             progress: StepCallback | None = None) -> FinetuneOutcome:
    """Probe the frozen net, then train net + classifier with AdamW; returns weights, never writes them."""
    t0 = time.perf_counter()
    name = backbone.ctx.entry.name
    net = backbone.module()
    if net is None:
        raise HarnessError(f"backbone {name!r} exposes no torch module (Backbone.module()); it cannot be fine-tuned")
    layer = cfg.layer or backbone.layers[-1]
    if layer not in backbone.layers:
        raise HarnessError(f"backbone {name!r} has no tapped layer {layer!r} (layers: {', '.join(backbone.layers)})")
    torch.manual_seed(cfg.seed)
    backbone.to(device)
    pre = cfg.preprocess_for(backbone.preprocess)
    y_all = np.asarray(data.labels, np.int64)
    tr, va = split_per_class(y_all, cfg.n_per_class, cfg.val_fraction, cfg.max_val_per_class, cfg.seed)
    y_tr, y_va = y_all[tr], y_all[va]
    k = len(data.classes)

    net.eval()
    f_tr = global_tokens(backbone, layer, data.stimuli, pre, tr, cfg.eval_batch_size, device)
    f_va = global_tokens(backbone, layer, data.stimuli, pre, va, cfg.eval_batch_size, device)
    probe = fit_probe(f_tr, y_tr, k, c=cfg.probe_c)
    probe_acc = accuracy(probe.predict(f_va), y_va)

    head = nn.Linear(f_tr.shape[1], k).to(device)
    _init_head(head, probe, cfg.head_init)
    start_acc = accuracy(head(torch.from_numpy(f_va).float().to(device)).detach().cpu().numpy().argmax(1), y_va)
    curve: list[dict[str, float]] = [{"step": 0, "val_accuracy": start_acc}]

    params = [p for p in (*net.parameters(), *head.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)
    loss_fn = nn.CrossEntropyLoss()
    stream = batches(len(tr), cfg.batch_size, cfg.seed)
    y_tr_t = torch.from_numpy(y_tr)
    losses: list[float] = []
    try:
        net.train(cfg.batchnorm == "train")
        for step in range(1, cfg.steps + 1):
            b = next(stream)
            x = image_batch(data.stimuli, pre, tr[b]).to(device)
            logits = head(backbone.tokens(x)[layer].global_.float())
            loss = loss_fn(logits, y_tr_t[b].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, cfg.steps, losses[-1])
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                net.eval()
                acc = _evaluate(backbone, head, layer, data.stimuli, pre, va, y_va, cfg.eval_batch_size, device)
                curve.append({"step": step, "val_accuracy": acc, "train_loss": float(np.mean(losses[-cfg.eval_every:]))})
                net.train(cfg.batchnorm == "train")
    finally:
        net.eval()
    val_acc = _evaluate(backbone, head, layer, data.stimuli, pre, va, y_va, cfg.eval_batch_size, device)
    tail = losses[-cfg.eval_every:] if cfg.eval_every else losses
    curve.append({"step": cfg.steps, "val_accuracy": val_acc, "train_loss": float(np.mean(tail))})
    counts = lambda idx: {c: int((y_all[idx] == i).sum()) for i, c in enumerate(data.classes)}
    return FinetuneOutcome(
        state_dict={n: t.detach().cpu().clone().contiguous() for n, t in net.state_dict().items()},
        classifier={n: t.detach().cpu().clone().contiguous() for n, t in head.state_dict().items()},
        layer=layer,
        probe_accuracy=probe_acc,
        start_accuracy=start_acc,
        val_accuracy=val_acc,
        n_train=len(tr),
        n_val=len(va),
        train_counts=counts(tr),
        val_counts=counts(va),
        curve=curve,
        wall_s=time.perf_counter() - t0,
    )
