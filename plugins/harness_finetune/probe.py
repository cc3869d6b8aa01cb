"""The frozen linear probe: multinomial logistic regression on centred, globally scaled features, the baseline.

Solved to convergence with full-batch L-BFGS in float64 (scikit-learn's objective:
``C · Σ cross-entropy + ½‖W‖²``, intercept unpenalised), so the baseline is the best
linear read-out of the frozen features rather than an under-trained SGD head.
Features are divided by one global scale, not per-feature standard deviations:
per-feature scaling gives near-constant features (common after ReLU) huge weights,
and a fine-tune started from such a probe is thrown off by the first tiny change
of those features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearProbe:
    """``logits = ((x - mean) / scale) @ coef.T + intercept``."""

    coef: np.ndarray  #: K × D
    intercept: np.ndarray  #: K
    mean: np.ndarray  #: D
    scale: float  #: root-mean-square of the centred training features

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return z @ self.coef.T + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision_function(x).argmax(1)

    def raw_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The same map on unstandardised features: ``(W / scale, b - (W / scale) · mean)``."""
        w = self.coef / self.scale
        return w, self.intercept - w @ self.mean


def fit_probe(x: np.ndarray, y: np.ndarray, n_classes: int, c: float = 1.0, max_iter: int = 500) -> LinearProbe:
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    scale = float(np.sqrt(((x - mean) ** 2).mean()))
    scale = scale if scale > 1e-12 else 1.0
    z = torch.from_numpy((x - mean) / scale)
    t = torch.from_numpy(np.asarray(y, np.int64))
    n, d = z.shape
    w = torch.zeros(n_classes, d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # scikit-learn's objective divided by C·n: same minimiser, well-scaled for L-BFGS
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, t, reduction="mean") + (w * w).sum() / (2 * c * n)
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(coef=w.detach().numpy().copy(), intercept=b.detach().numpy().copy(), mean=mean, scale=scale)


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(pred) == np.asarray(y)).mean())
