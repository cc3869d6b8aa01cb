"""scikit-learn-style estimator around :func:`harness.kit.ridge.solvers.solve_ridge_cv`.

Why a separate layer: the solver trusts its inputs so that it can stay a thin
sequence of matrix products; the estimator is where user input is checked
(with one-line, actionable error messages), where NumPy/torch inputs are
accepted, and where results are exposed as NumPy attributes with the familiar
``fit``/``predict``/``score`` protocol (so it drops into encoding pipelines
that already use sklearn or himalaya estimators).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .backend import Backend, get_backend
from .solvers import CV, DEFAULT_TARGETS_BATCH, Scoring, check_alphas, solve_ridge_cv

__all__ = ["DEFAULT_ALPHAS", "RidgeCV"]

#: Default grid: 8 log-spaced values from 1e-2 to 1e5.
DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 5, 8))


def _is_tensor(x: Any) -> bool:
    """True for torch tensors, without importing torch for NumPy-only users."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _as_array(x: Any, name: str) -> Any:
    """Return ``x`` as a NumPy array or torch tensor with a real numeric dtype.

    Torch tensors are kept as tensors (they may live on a GPU); everything else
    goes through ``np.asarray`` without copying when possible.
    """
    if _is_tensor(x):
        if x.dtype.is_complex or str(x.dtype) == "torch.bool":
            raise TypeError(
                f"{name} must be a real numeric tensor, got dtype {x.dtype}"
            )
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _count_nonfinite(x: Any) -> int:
    """Count NaN/inf entries with the library the array already lives in (no host copy)."""
    if _is_tensor(x):
        if not x.dtype.is_floating_point:
            return 0
        import torch

        if bool(torch.isfinite(torch.sum(x, dtype=torch.float64))):
            return 0
        return int(x.numel() - int(torch.isfinite(x).sum()))
    if x.dtype.kind != "f":
        return 0
    return get_backend("numpy").count_nonfinite(x)


def _check_finite(x: Any, name: str) -> None:
    bad = _count_nonfinite(x)
    if bad:
        raise ValueError(
            f"{name} contains {bad} non-finite (NaN or inf) entries out of {int(np.prod(x.shape))}"
        )


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


class RidgeCV:
    """Ridge regression with one alpha per target chosen by cross-validation.

    Leave-one-out (``cv="loo"``, the default) reproduces
    ``sklearn.linear_model.RidgeCV(alphas, alpha_per_target=True)``: same LOO
    errors, same chosen alphas (first in the list on ties), same coefficients,
    but it runs in float32 by default, shares one decomposition across all
    alphas, processes targets in bounded-memory chunks and can run on a GPU.

    Parameters
    ----------
    alphas : positive regularisation strengths to try (order sets tie-breaks).
    cv : ``"loo"``, an int K (contiguous K-fold, like ``KFold(K)``), a list of
        ``(train, val)`` index pairs, or a splitter with ``split``.
    fit_intercept : fit an unpenalised intercept (centres X and Y).
    scoring : ``"mse"`` (default) or ``"r2"`` (K-fold only) to select alphas.
    backend : ``"auto"`` (CUDA if available, else NumPy/OpenBLAS on CPU), ``"torch"``,
        ``"torch_cuda"``, ``"numpy"``, or a backend object.
    dtype : working precision of the large products, ``"float32"`` or ``"float64"``.
        The decomposition is always float64.  Use float64 to reproduce
        sklearn's choices exactly; float32 agrees on nearly all targets.
    n_targets_batch : targets per chunk; bounds memory to O(n_samples x batch).
    all_scores : LOO only: score every alpha exactly.  By default alphas proven
        (by a bound) not to be a target's minimum are skipped (~5x fewer LOO
        products when n_samples >> n_features) and left NaN in ``cv_scores_``;
        chosen alphas and coefficients are the same either way.

    Attributes (after ``fit``)
    --------------------------
    best_alphas_ : (n_targets,) chosen alpha per target.
    best_alpha_indices_ : (n_targets,) their index in ``alphas``.
    cv_scores_ : (n_alphas, n_targets) mean CV squared error per alpha
        (mean R² when ``scoring="r2"``); NaN for LOO alphas skipped as provably
        worse (see ``all_scores``).
    coef_ : (n_features, n_targets) coefficients ((n_features,) for 1-D y).
    intercept_ : (n_targets,) intercepts (a float for 1-D y).
    n_features_in_ : number of features seen in ``fit``.
    backend_ : name of the backend that ran the fit.
    factorisation_ : how the design was factorised (route and LAPACK driver), so a
        slow fit can be traced to its decomposition.
    """

    def __init__(
        self,
        alphas: Any = DEFAULT_ALPHAS,
        *,
        cv: CV = "loo",
        fit_intercept: bool = True,
        scoring: Scoring = "mse",
        backend: str | Backend = "auto",
        dtype: str = "float32",
        n_targets_batch: int | None = DEFAULT_TARGETS_BATCH,
        all_scores: bool = False,
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.backend = backend
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.all_scores = all_scores

    # -- sklearn plumbing (so clone()/grid searches work without sklearn as a dependency)
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as sklearn's ``BaseEstimator.get_params``."""
        names = [
            p for p in inspect.signature(type(self).__init__).parameters if p != "self"
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> RidgeCV:
        """Set constructor parameters, as sklearn's ``BaseEstimator.set_params``."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for RidgeCV; valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return (
            f"RidgeCV(cv={self.cv!r}, backend={self.backend!r}, dtype={self.dtype!r})"
        )

    # -- validation -------------------------------------------------------------
    def _validate_params(self) -> None:
        try:
            dtype_name = np.dtype(self.dtype).name
        except TypeError:
            dtype_name = None
        if dtype_name not in ("float32", "float64"):
            raise ValueError(
                f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        if self.scoring not in ("mse", "r2"):
            raise ValueError(f"scoring must be 'mse' or 'r2', got {self.scoring!r}")
        if self.n_targets_batch is not None and (
            not isinstance(self.n_targets_batch, (int, np.integer))
            or self.n_targets_batch < 1
        ):
            raise ValueError(
                f"n_targets_batch must be a positive int or None, got {self.n_targets_batch!r}"
            )

    def _validate_X(self, X: Any, name: str = "X") -> Any:
        X = _as_array(X, name)
        if X.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got shape {_shape(X)}"
            )
        if 0 in X.shape:
            raise ValueError(f"{name} must be non-empty, got shape {_shape(X)}")
        _check_finite(X, name)
        return X

    # -- public API -----------------------------------------------------------------
    def fit(self, X: Any, Y: Any) -> RidgeCV:
        """Choose an alpha per target by CV, then refit every target on all samples.

        X : (n_samples, n_features); Y : (n_samples,) or (n_samples, n_targets).
        NumPy arrays (any float/int dtype) or torch tensors (any device).
        """
        self._validate_params()
        X = self._validate_X(X)
        Y = _as_array(Y, "Y")
        if Y.ndim not in (1, 2):
            raise ValueError(
                f"Y must be 1-D or 2-D (n_samples[, n_targets]), got shape {_shape(Y)}"
            )
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has shape {_shape(X)} but Y has shape {_shape(Y)}: they need the same n_samples (first axis)"
            )
        if 0 in Y.shape:
            raise ValueError(f"Y must be non-empty, got shape {_shape(Y)}")
        _check_finite(Y, "Y")
        alphas = check_alphas(self.alphas)
        dtype = np.dtype(self.dtype).name
        ravel = Y.ndim == 1
        Y2 = Y[:, None] if ravel else Y

        res = solve_ridge_cv(
            X,
            Y2,
            alphas,
            cv=self.cv,
            fit_intercept=self.fit_intercept,
            scoring=self.scoring,
            backend=self.backend,
            dtype=dtype,
            n_targets_batch=self.n_targets_batch,
            refit=True,
            all_scores=self.all_scores,
        )
        self.alphas_ = alphas
        self.best_alphas_ = res.best_alphas
        self.best_alpha_indices_ = res.best_alpha_indices
        self.cv_scores_ = res.cv_scores
        self.coef_ = res.coef[:, 0] if ravel else res.coef
        self.intercept_ = float(res.intercept[0]) if ravel else res.intercept
        self.n_features_in_ = int(X.shape[1])
        self.backend_ = get_backend(self.backend).name
        self.factorisation_ = res.factorisation
        self._ravel = ravel
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError(
                "this RidgeCV instance is not fitted yet; call fit(X, Y) first"
            )

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``X @ coef_ + intercept_`` as a NumPy array (computed on the backend)."""
        self._check_fitted()
        X = self._validate_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but the model was fitted with {self.n_features_in_}"
            )
        b = get_backend(self.backend)
        coef = self.coef_[:, None] if self._ravel else self.coef_
        dtype = np.dtype(coef.dtype).name
        out = b.matmul(b.asarray(X, dtype), b.asarray(coef, dtype))
        pred = b.to_numpy(out) + np.asarray(self.intercept_, dtype=dtype)
        return pred[:, 0] if self._ravel else pred

    def score(self, X: Any, Y: Any) -> np.ndarray:
        """Per-target Pearson correlation between ``predict(X)`` and ``Y``.

        The encoding-model convention (rather than sklearn's single R²): one
        value per voxel.  Targets or predictions with zero variance score 0.
        """
        pred = self.predict(X)
        Y = _as_array(Y, "Y")
        Y = Y.detach().cpu().numpy() if _is_tensor(Y) else Y
        if Y.shape != pred.shape:
            raise ValueError(
                f"Y has shape {_shape(Y)} but predictions have shape {pred.shape}"
            )
        _check_finite(Y, "Y")
        yt = np.asarray(Y, dtype=np.float64).reshape(pred.shape[0], -1)
        yp = pred.astype(np.float64).reshape(pred.shape[0], -1)
        yt = yt - yt.mean(0)
        yp = yp - yp.mean(0)
        num = np.einsum("ij,ij->j", yt, yp)
        den = np.sqrt(np.einsum("ij,ij->j", yt, yt) * np.einsum("ij,ij->j", yp, yp))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return r
