"""The reliability-weighted RDM loss: fit every training subject's entry at once.

An entry on which subjects disagree (large across-subject std N) is noise the encoder
should not chase, so it gets weight w = (1 / (N + α·N̄))^β, where N̄ is the mean of N over
the entries (upper triangle): α·N̄ keeps the weight finite where subjects happen to agree.
"""

from __future__ import annotations

import numpy as np
import torch

from harness_aggregation.specs import LossKind


def reliability_weights(rdms: np.ndarray, alpha: float = 0.25, beta: float = 1.0) -> np.ndarray:
    """``N×N`` weights from training subjects' RDMs ``S×N×N``; N = population std over subjects (ddof 0).

    One training subject (or subjects in perfect agreement) says nothing about reliability: uniform weights.
    """
    rdms = np.asarray(rdms, np.float64)
    noise = rdms.std(axis=0)
    iu = np.triu_indices(rdms.shape[-1], k=1)
    mean_noise = float(noise[iu].mean())
    if len(rdms) < 2 or mean_noise == 0.0:
        return np.ones(rdms.shape[-2:])
    with np.errstate(divide="ignore"):  # only the unused diagonal can be 0 / 0 when alpha = 0
        return (1.0 / (noise + alpha * mean_noise)) ** beta


def rdm_loss(pred: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, kind: LossKind) -> torch.Tensor:
    """Mean over subjects and pairs of ``w · |pred − target|`` (or squared); pred ``P``, targets ``S×P``, weights ``P``."""
    err = pred[None, :] - targets
    err = err.abs() if kind == "l1" else err * err
    return (err * weights[None, :]).mean()
