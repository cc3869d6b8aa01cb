"""The one training loop of the gradient-trained token heads (FactorTopy, its ablations, the token baselines).

Why chunk over voxels: per-voxel feature tensors are ``batch × bottleneck × voxels``
per layer, 8 GB for 40 000 voxels and 12 layers. A model therefore splits its
forward into a *shared* part (per-layer channel alignment, the same for every
voxel) and a per-voxel *readout* evaluated on voxel chunks. Each chunk's loss is
back-propagated into detached copies of the shared tensors, whose accumulated
gradients are pushed through the shared part once per step: the gradients equal
those of the unchunked loss while memory is bounded by one chunk.

Training follows Yang, Gee & Shi (CVPR 2024): smooth L1 (β = 0.1) on z-scored
responses plus an optional regulariser with a linearly decaying weight; AdamW;
early stopping on a validation split of the training stimuli; a Model Soup
(uniform average of the weights of the best validation checkpoints), kept only when
it validates at least as well as the best single checkpoint.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.contracts import LayerTokens
from harness.kit.token_source import TokenSource
from harness.kit.train_args import TrainArgs


class ChunkedVoxelModel(nn.Module):
    """A voxel-wise encoding model split into a shared part and a chunked per-voxel readout."""

    n_voxels: int

    @abstractmethod
    def shared(self, batch: list[LayerTokens]) -> list[torch.Tensor]:
        """Voxel-independent tensors (e.g. channel-aligned tokens) computed once per stimulus batch."""

    @abstractmethod
    def readout(self, shared: list[torch.Tensor], vox: slice) -> torch.Tensor:
        """Predictions ``B × len(vox)`` for a chunk of voxels."""

    def regulariser(self, vox: slice) -> torch.Tensor | None:
        """Mean over the chunk's voxels of a penalty whose weight follows the schedule; None: none."""
        return None

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """AdamW parameter groups; a model may give some parameters their own learning rate."""
        return [{"params": list(self.parameters()), "lr": lr}]


@dataclass
class TrainResult:
    steps: int
    epochs: float
    best_step: int
    val_r_best: float
    val_r_final: float
    soup_used: bool
    seconds: float
    history: list[tuple[int, float]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"steps": self.steps, "epochs": round(self.epochs, 2), "best_step": self.best_step, "val_r_best": self.val_r_best,
                "val_r_final": self.val_r_final, "soup_used": self.soup_used, "train_s": self.seconds,
                "steps_per_s": self.steps / self.seconds if self.seconds > 0 else None}


def voxel_chunks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def pearson_columns_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson r of matching columns; 0 where a column is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = (a.square().sum(0) * b.square().sum(0)).sqrt()
    return torch.where(den > 0, (a * b).sum(0) / den.clamp_min(1e-30), torch.zeros_like(den))


def train_step(model: ChunkedVoxelModel, batch: list[LayerTokens], y: torch.Tensor, chunk: int, beta: float,
               reg_weight: float) -> torch.Tensor:
    """Accumulate one step's gradients chunk by chunk; returns the (detached) loss."""
    shared = model.shared(batch)
    leaves = [s.detach().requires_grad_(s.requires_grad) for s in shared]
    n, v = y.shape
    total = torch.zeros((), device=y.device)
    for vox in voxel_chunks(v, chunk):
        pred = model.readout(leaves, vox)
        loss = F.smooth_l1_loss(pred, y[:, vox], beta=beta, reduction="sum") / (n * v)
        if reg_weight != 0:
            reg = model.regulariser(vox)
            if reg is not None:
                loss = loss + reg_weight * reg * ((vox.stop - vox.start) / v)
        loss.backward()
        total = total + loss.detach()
    pairs = [(s, leaf.grad) for s, leaf in zip(shared, leaves, strict=True) if s.requires_grad and leaf.grad is not None]
    if pairs:
        torch.autograd.backward([s for s, _ in pairs], [g for _, g in pairs])
    return total


@torch.no_grad()
def predict(model: ChunkedVoxelModel, source: TokenSource, idx: np.ndarray, batch_size: int, chunk: int) -> torch.Tensor:
    """Predictions ``len(idx) × V`` on the device, in the model's (z-scored) response units."""
    was = model.training
    model.eval()
    out = []
    for s in range(0, len(idx), batch_size):
        shared = model.shared(source.batch(idx[s : s + batch_size]))
        out.append(torch.cat([model.readout(shared, vox) for vox in voxel_chunks(model.n_voxels, chunk)], dim=1))
    model.train(was)
    return torch.cat(out)


def _soup(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    avg = {}
    for k, t in states[0].items():
        avg[k] = torch.stack([s[k] for s in states]).mean(0).to(t.dtype) if t.is_floating_point() else t.clone()
    return avg


def steps_per_epoch(n_fit: int, batch_size: int) -> int:
    """Full batches per pass over the fit stimuli (the last, partial batch is dropped; at least 1)."""
    return max(1, n_fit // batch_size)


@dataclass(frozen=True)
class TrainPlan:
    """The planned length of a fit, known before its first step, so a schedule can be set as a share of it.

    Why: a schedule quoted in epochs or steps fixed in advance does not end where the fit ends once
    ``max_epochs``/``max_steps`` change (an entropy decay of 75 epochs never finished inside a 600-step cap,
    and the layer selectors never sharpened, issue 12).
    """

    per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, n_fit: int, args: TrainArgs) -> TrainPlan:
        per_epoch = steps_per_epoch(n_fit, args.batch_size)
        total = max(1, round(args.max_epochs * per_epoch))
        return cls(per_epoch, total if args.max_steps is None else min(total, args.max_steps))


class Schedule(Protocol):
    """A regulariser weight as a function of (step, epoch): schedules may be quoted in either unit."""

    #: first step from which the weight no longer changes: early stopping and checkpoint selection wait for it
    settled: int

    def __call__(self, step: int, epoch: float) -> float: ...


@dataclass(frozen=True)
class Constant:
    weight: float = 0.0
    settled: int = 0

    def __call__(self, step: int, epoch: float) -> float:
        return self.weight


no_regulariser = Constant(0.0)


def unregularised(plan: TrainPlan) -> Schedule:
    return no_regulariser


@dataclass(frozen=True)
class LinearDecay:
    """``start`` at step 0, moving linearly to ``end`` at step ``settled`` and staying there (``settled`` 0:
    ``end`` throughout). A negative ``end`` turns a regulariser into its opposite for the rest of the fit
    (FactorTopy: from keeping the layer selector soft to sharpening it)."""

    start: float
    settled: int
    end: float = 0.0

    def __call__(self, step: int, epoch: float) -> float:
        if self.settled <= 0 or step >= self.settled:
            return self.end
        return self.start + (self.end - self.start) * step / self.settled


def linear_decay(start: float, plan: TrainPlan, steps: int | None = None, epochs: float | None = None,
                 fraction: float | None = None, end: float = 0.0) -> LinearDecay:
    """A decay to ``end`` over ``steps`` steps, else ``epochs`` epochs, else ``fraction`` of the planned steps
    (none of them: ``end`` from the start)."""
    if steps is not None:
        n = steps
    elif epochs is not None:
        n = round(epochs * plan.per_epoch)
    elif fraction is not None:
        n = round(fraction * plan.total_steps)
    else:
        n = 0
    return LinearDecay(start if n > 0 else end, max(0, n), end)


def adamw(groups: list[dict[str, Any]], args: TrainArgs) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step where every parameter is a float32/float64 tensor on one device.

    Why: for ~25 small tensors shaped like a FactorTopy net's, the default per-parameter loop took 9.4 ms per
    step on this 2-core CPU under load and the fused kernel 1.7 ms (same update rule; results agree to float
    rounding).
    """
    params = [p for g in groups for p in g["params"]]
    devices = {p.device.type for p in params}
    fusable = len(devices) == 1 and devices <= {"cpu", "cuda"} and all(p.dtype in (torch.float32, torch.float64)
                                                                         for p in params)
    return torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay, fused=fusable or None)


def fit(model: ChunkedVoxelModel, source: TokenSource, y: torch.Tensor, fit_idx: np.ndarray, val_idx: np.ndarray,
        args: TrainArgs, seed: int, reg_schedule: Callable[[TrainPlan], Schedule] = unregularised,
        progress: Callable[[str, float], None] | None = None) -> TrainResult:
    """Train in place; ``y`` holds z-scored responses of *all* stimuli (row = stimulus index), on the device.

    The schedule is in epochs (``max_epochs``, validation once per epoch) capped by ``max_steps``;
    training stops earlier once validation r has not improved by ``min_delta`` for ``patience``
    validations. The only host synchronisation is the validation r read once per validation.
    ``reg_schedule`` builds the regulariser's schedule from the plan; until it has *settled* (e.g. an
    annealed weight has reached 0) validations neither count towards ``patience`` nor enter the soup:
    the model returned is one of the objective the schedule ends in, not a half-annealed one, and a
    validation plateau during annealing cannot stop the fit before the selectors have sharpened.
    On return the model holds the soup (or the best checkpoint's) weights.
    """
    rng = np.random.default_rng(seed)
    opt = adamw(model.param_groups(args.lr), args)
    y_val = y[torch.as_tensor(val_idx, device=y.device)]
    plan = TrainPlan.of(len(fit_idx), args)
    per_epoch, total_steps = plan.per_epoch, plan.total_steps
    schedule = reg_schedule(plan)
    settled = min(schedule.settled, total_steps)  # the last validation always counts
    bs = min(args.batch_size, len(fit_idx))
    eval_every = args.eval_every or per_epoch
    best: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # (val r, step, state on CPU)
    history: list[tuple[int, float]] = []
    since_best, step, t0 = 0, 0, time.perf_counter()
    best_r = -np.inf
    order = np.empty(0, np.int64)
    pos = 0
    model.train()
    while step < total_steps:
        if pos + bs > len(order):
            order, pos = fit_idx[rng.permutation(len(fit_idx))], 0
        b = order[pos : pos + bs]
        pos += bs
        yb = y[torch.as_tensor(b, device=y.device)]
        train_step(model, source.batch(b), yb, args.voxel_chunk, args.smooth_l1_beta, schedule(step, step / per_epoch))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % eval_every == 0 or step == total_steps:
            r = float(pearson_columns_t(predict(model, source, val_idx, args.batch_size, args.voxel_chunk), y_val).mean())
            history.append((step, r))
            if progress:
                progress(f"epoch {step / per_epoch:.1f} val r {r:.3f}", step / total_steps)
            if step < settled:
                continue
            if r > best_r + args.min_delta:
                since_best, best_r = 0, r
            else:
                since_best += 1
            if len(best) < args.soup or r > best[-1][0]:  # copy weights only when they enter the soup
                state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                best = sorted([*best, (r, step, state)], key=lambda t: -t[0])[: args.soup]
            if since_best >= args.patience:
                break
    seconds = time.perf_counter() - t0
    r_best, best_step, best_state = best[0]
    soup_used = False
    if len(best) > 1:
        model.load_state_dict(_soup([s for _, _, s in best]))
        r_soup = float(pearson_columns_t(predict(model, source, val_idx, args.batch_size, args.voxel_chunk), y_val).mean())
        soup_used = r_soup >= r_best
        if not soup_used:
            model.load_state_dict(best_state)
        r_final = r_soup if soup_used else r_best
    else:
        model.load_state_dict(best_state)
        r_final = r_best
    return TrainResult(steps=step, epochs=step / per_epoch, best_step=best_step, val_r_best=r_best, val_r_final=r_final, soup_used=soup_used,
                       seconds=seconds, history=history)


