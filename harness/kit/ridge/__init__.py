"""Fast closed-form ridge regression with one alpha per target (per voxel).

* :class:`RidgeCV` – sklearn-style estimator (LOO or K-fold CV, NumPy/torch/CUDA).
* :func:`ridge_loo_alphas` – just the per-target LOO alpha selection.
* :func:`get_backend` – the array-backend switch used by both.

See :mod:`harness.kit.ridge.solvers` for the maths and why it is fast.
"""

from .backend import get_backend
from .estimator import RidgeCV
from .solvers import ridge_loo_alphas

__all__ = ["RidgeCV", "get_backend", "ridge_loo_alphas"]
