"""Closed-form ridge regression with one regularisation strength per target.

This module holds the maths only; :mod:`harness.kit.ridge.estimator` wraps it in
a scikit-learn-style estimator.

Why it is fast
--------------
Brain-encoding fits have few stimuli/features (``n ~ 10^3``, ``p ~ 10^3``) but
many targets (``t ~ 4·10^4`` voxels) and a grid of ``a ~ 10`` alphas.  Every
alpha shares the *same* decomposition of the design, so the design is
factorised once, ``Xc = U diag(s) V^T`` (thin SVD from the eigendecomposition
of ``Xc^T Xc`` when ``n >= p``, checked for orthonormality with LAPACK's SVD as
fallback; the ``n x n`` kernel eigendecomposition when ``p > n``), and
everything per alpha becomes a rescaling of the singular values:

* leave-one-out residuals (``g_j = alpha / (s_j^2 + alpha)``)::

      r(alpha)   = y_c - U diag(1 - g) U^T y   (= y_perp + U diag(g) U^T y)
      1 - h_i    = lev_perp_i + sum_j U_ij^2 g_j,  lev_perp_i = 1 - 1/n - ||U_i||^2
      LOO error  = mean_i (r_i / (1 - h_i))^2

  (``1/n`` is the hat value of the unpenalised intercept on centred data; this is
  exactly scikit-learn's efficient LOO, ``_RidgeGCV``).  The first form costs one
  GEMM per alpha with ``y_c`` subtracted inside it; the second would need one more
  GEMM per chunk for ``y_perp`` and was measured no more accurate in float32
  (median relative LOO error 7e-8 either way, 2000 voxels).
* coefficients: ``w(alpha) = V diag(s / (s^2 + alpha)) U^T y``.

Per alpha the only O(n·k·t) work is one GEMM; ``U^T y`` is computed once per
target chunk and shared by every alpha and by the final refit.  That GEMM is
the floor of exact LOO (the leverage weights change with alpha), so by default
it is run only for the (alpha, target) pairs that can still be the minimum: a
bound on each LOO error from O(n + k) work per pair
(:func:`_loo_chunk_pruned`) rules out ~80 % of them when n >> p.  The refit needs
no loop over alphas at all: scaling each column of ``U^T Y`` by the filter
factors of *its own* chosen alpha turns "group the targets by alpha, one matmul
per group" into a single matmul for all targets.

The decomposition and the leverages are always computed in float64 (they cost
O(n p min(n, p)), negligible next to the O(a n p t) products), while the bulk
products run in the requested working dtype (float32 by default).  In float32
LOO mode the few targets whose two best alphas are closer than float32 can
resolve are re-scored in float64 (:class:`_Float64Refiner`), so the chosen
alphas match sklearn's float64 choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .backend import Array, Backend, get_backend

__all__ = [
    "DEFAULT_TARGETS_BATCH",
    "Decomposition",
    "RidgeCVResult",
    "check_alphas",
    "decompose",
    "kfold_splits",
    "resolve_cv",
    "ridge_loo_alphas",
    "solve_ridge_cv",
]

#: Default number of targets processed together: large enough for efficient
#: GEMMs, small enough that the ``n x batch`` residual block stays in cache and
#: memory stays bounded for 40 000 voxels.
DEFAULT_TARGETS_BATCH: int = 2048

Scoring = Literal["mse", "r2"]
CV = Literal["loo"] | int | Sequence[tuple[Any, Any]] | Any


@dataclass
class RidgeCVResult:
    """Outputs of :func:`solve_ridge_cv` (all host NumPy arrays).

    ``cv_scores`` holds, for every alpha and target, the mean squared
    cross-validation error (``scoring="mse"``, lower is better) or the mean
    R² (``scoring="r2"``, higher is better).  ``coef``/``intercept`` are
    ``None`` when the refit was not requested.
    """

    best_alphas: np.ndarray  # (n_targets,)
    best_alpha_indices: np.ndarray  # (n_targets,) index into ``alphas``
    cv_scores: np.ndarray  # (n_alphas, n_targets)
    coef: np.ndarray | None  # (n_features, n_targets)
    intercept: np.ndarray | None  # (n_targets,)
    factorisation: str = ""  # route of the full-data decomposition (empty for K-fold without refit)


@dataclass
class Decomposition:
    """Thin SVD of the (centred) design, rank-truncated, on the backend.

    ``U``/``V`` are kept in the working dtype for the big products, ``s`` and
    ``lev_perp`` in float64 for the per-alpha scalars.  ``spans_complement``
    records that ``U`` spans every direction a centred target can have, in
    which case ``y_perp`` is identically zero and the residual GEMM has no
    target term (``U diag(g) z`` instead of ``y_c - U diag(1-g) z``).

    ``Ua`` is ``U`` with, when fitting an intercept, one extra column
    ``1/sqrt(n)`` (orthonormal to ``U`` because ``Xc`` is centred).  A
    target's coordinates on ``Ua`` are ``(U^T y, sqrt(n) mean(y))``: the GEMM
    that projects a raw chunk also yields its means, so targets are never
    centred in a separate pass over memory.
    """

    U: Array  # (n, k) working dtype
    Ua: Array  # (n, k + intercept) working dtype, contiguous
    Uat: Array  # Ua.T, contiguous
    s: Array  # (k,) float64, descending, all > 0
    V: Array  # (p, k) working dtype
    x_mean: Array  # (p,) float64 (zeros when no intercept)
    lev_perp: Array  # (n,) float64, 1 - 1/n - ||U_i||^2 clipped to >= 0
    spans_complement: bool
    fit_intercept: bool
    U64: Array  # (n, k) float64, kept for the leverages
    route: str = ""  # how it was factorised (LAPACK driver), for benchmarks and reports

    @property
    def k(self) -> int:
        """Rank kept."""
        return int(self.s.shape[0])

    def split(self, b: Backend, Za: Array) -> tuple[Array, Array | None]:
        """Split ``Za = Y_raw @ Ua`` (c, k[+1]) into ``Z = Yc @ U`` (contiguous) and the means."""
        if not self.fit_intercept:
            return Za, None
        n = self.Ua.shape[0]
        return b.asarray(Za[:, : self.k]), Za[:, self.k] / math.sqrt(n)


def _augment(
    b: Backend, U64: Array, fit_intercept: bool, dtype: str
) -> tuple[Array, Array]:
    """``Ua = [U, 1/sqrt(n)]`` (or ``U``) and its transpose, contiguous, in ``dtype``."""
    n = U64.shape[0]
    Ua = b.asarray(U64, dtype)
    if fit_intercept:
        ones = b.asarray(np.full((n, 1), 1.0 / math.sqrt(n)), dtype)
        Ua = b.concat([Ua, ones], 1)
    return b.asarray(Ua), b.asarray(Ua.T)


def check_alphas(alphas: Any) -> np.ndarray:
    """Validate the alpha grid: a non-empty 1-D array of finite, positive floats.

    Order is preserved (ties are broken by position in this list, as sklearn does).
    """
    if hasattr(alphas, "detach"):
        alphas = alphas.detach().cpu().numpy()
    arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"alphas must be a non-empty 1-D sequence, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"alphas must be finite and > 0, got {arr.tolist()}")
    return arr


def kfold_splits(n_samples: int, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous, unshuffled K-fold splits, identical to ``sklearn.model_selection.KFold``.

    Implemented here so the package does not depend on scikit-learn at runtime.
    """
    if (
        not isinstance(n_splits, (int, np.integer))
        or isinstance(n_splits, bool)
        or n_splits < 2
    ):
        raise ValueError(f"cv as an int must be >= 2, got {n_splits!r}")
    if n_splits > n_samples:
        raise ValueError(f"cv={n_splits} folds but only {n_samples} samples")
    sizes = np.full(n_splits, n_samples // n_splits, dtype=np.intp)
    sizes[: n_samples % n_splits] += 1
    splits = []
    start = 0
    all_idx = np.arange(n_samples)
    for size in sizes:
        val = all_idx[start : start + size]
        train = np.concatenate([all_idx[:start], all_idx[start + size :]])
        splits.append((train, val))
        start += size
    return splits


def resolve_cv(
    cv: CV, n_samples: int
) -> Literal["loo"] | list[tuple[np.ndarray, np.ndarray]]:
    """Turn ``cv`` into ``"loo"`` or an explicit list of ``(train, val)`` index arrays.

    Accepts ``"loo"``, an int (K-fold), an iterable of index pairs, or any
    object with a scikit-learn style ``split(X)`` method.
    """
    if isinstance(cv, str):
        if cv.lower() != "loo":
            raise ValueError(
                f"cv must be 'loo', an int, or (train, val) pairs; got {cv!r}"
            )
        return "loo"
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        return kfold_splits(n_samples, int(cv))
    if hasattr(cv, "split"):
        cv = cv.split(np.zeros((n_samples, 1)))
    if not isinstance(cv, Iterable):
        raise TypeError(f"cv must be 'loo', an int, or (train, val) pairs; got {cv!r}")
    splits = []
    for i, pair in enumerate(cv):
        try:
            train, val = pair
        except (TypeError, ValueError):
            raise ValueError(f"cv entry {i} is not a (train, val) pair") from None
        train = np.asarray(train).ravel()
        val = np.asarray(val).ravel()
        for name, idx in (("train", train), ("val", val)):
            if idx.dtype == bool:
                raise ValueError(
                    f"cv entry {i}: {name} must be integer indices, not a boolean mask"
                )
            if idx.size == 0:
                raise ValueError(f"cv entry {i}: empty {name} set")
            if not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(
                    f"cv entry {i}: {name} indices must be integers, got {idx.dtype}"
                )
            if idx.min() < -n_samples or idx.max() >= n_samples:
                raise ValueError(
                    f"cv entry {i}: {name} indices out of range for {n_samples} samples"
                )
        splits.append(
            (train.astype(np.intp) % n_samples, val.astype(np.intp) % n_samples)
        )
    if not splits:
        raise ValueError("cv contains no (train, val) pairs")
    return splits


#: Largest ``max|U^T U - I|`` accepted from the Gram route of :func:`_thin_svd_via_gram`.
#: The error is ~``eps * cond(Xc)^2``; 1e-10 keeps s, U and V as accurate as the
#: float64 tests against scikit-learn require (rtol 1e-9) and falls back to LAPACK's
#: SVD for designs with condition number above ~10^3.
GRAM_ORTHOGONALITY_TOL: float = 1e-10


def _thin_svd_via_gram(b: Backend, Xc: Array) -> tuple[Array, Array, Array, str]:
    """Thin SVD of a tall float64 ``Xc`` (n >= p) from the eigendecomposition of ``Xc^T Xc``.

    Why: LAPACK's ``gesdd`` of a 3000 x 768 design is a chain of BLAS-2 calls
    (bidiagonalisation) and took 1.1 s on one core; the Gram route is two
    float64 GEMMs plus a 768 x 768 ``eigh`` (~0.25 s).  Squaring the matrix squares
    its condition number, so the result is accepted only when ``U`` comes out
    orthonormal to :data:`GRAM_ORTHOGONALITY_TOL`; otherwise the exact SVD is used.
    Returns ``(U, s, V, route)`` with ``s`` descending, numerically zero directions
    dropped, and ``route`` naming the LAPACK driver that ran.
    """
    n, p = Xc.shape
    eps = float(np.finfo(np.float64).eps)
    lam, Q = b.eigh(b.matmul(Xc.T, Xc))  # ascending
    lam_np = b.to_numpy(lam)
    lam_max = float(lam_np[-1]) if lam_np.size else 0.0
    keep = np.flatnonzero(lam_np > max(lam_max, 0.0) * max(n, p) * eps)[::-1].copy()
    # A (numerically) rank-deficient design goes to the SVD: the Gram matrix cannot
    # tell which of its tiny singular values the SVD would keep.
    if 0 < keep.size == lam_np.size:
        keep_b = b.index(keep)
        s = b.sqrt(lam[keep_b])
        V = b.asarray(Q[:, keep_b])
        U = b.matmul(Xc, V) / s
        err = b.to_numpy(b.matmul(U.T, U)) - np.eye(keep.size)
        if float(np.abs(err).max()) <= GRAM_ORTHOGONALITY_TOL:
            return U, s, V, "eigh(Xc^T Xc) [syevd], float64"
    U, s, Vt = b.svd(Xc)
    s_np = b.to_numpy(s)
    s_max = float(s_np[0]) if s_np.size else 0.0
    k = int(np.count_nonzero(s_np > s_max * max(n, p) * eps))
    return U[:, :k], s[:k], Vt[:k].T, "svd(Xc) [gesdd], float64 (Gram route not orthonormal)"


def decompose(
    backend: Backend, X: Array, fit_intercept: bool, dtype: str
) -> Decomposition:
    """Centre ``X`` (float64 backend array) and factorise it once for all alphas.

    Uses the thin SVD of ``Xc`` when ``n_samples >= n_features`` and the
    eigendecomposition of the ``n x n`` kernel ``Xc Xc^T`` when
    ``n_features > n_samples`` (cheaper: O(n^2 p) instead of O(n p^2)).
    Directions with numerically zero singular value are dropped; for ridge they
    behave exactly like ``s = 0`` (no fit, full residual), which the
    ``y_perp``/``lev_perp`` terms account for.
    """
    b = backend
    n, p = X.shape
    if fit_intercept:
        x_mean = b.mean(X, 0)
        Xc = X - x_mean
    else:
        x_mean = b.zeros((p,), "float64")
        Xc = X
    eps = float(np.finfo(np.float64).eps)
    if p > n:
        K = b.matmul(Xc, Xc.T)
        lam, Q = b.eigh(K)  # ascending
        lam_np = b.to_numpy(lam)
        lam_max = float(lam_np[-1]) if lam_np.size else 0.0
        tol = max(lam_max, 0.0) * max(n, p) * eps
        keep = np.flatnonzero(lam_np > tol)[::-1].copy()  # descending order
        keep_b = b.index(keep)
        U64 = Q[:, keep_b]
        s = b.sqrt(lam[keep_b])
        V64 = b.matmul(Xc.T, U64) / s
        route = "eigh(Xc Xc^T) [syevd], float64"
    else:
        U64, s, V64, route = _thin_svd_via_gram(b, Xc)
    U64 = b.asarray(U64, "float64")
    V64 = b.asarray(V64, "float64")
    k = int(s.shape[0])
    lev = 1.0 - (1.0 / n if fit_intercept else 0.0) - b.sum(U64 * U64, 1)
    lev_perp = b.clip_min(lev, 0.0)
    spans = k >= n - (1 if fit_intercept else 0)
    Ua, Uat = _augment(b, U64, fit_intercept, dtype)
    return Decomposition(
        U=b.asarray(U64, dtype),
        Ua=Ua,
        Uat=Uat,
        s=s,
        V=b.asarray(V64, dtype),
        x_mean=x_mean,
        lev_perp=lev_perp,
        spans_complement=spans,
        fit_intercept=fit_intercept,
        U64=U64,
        route=route,
    )


def _loo_weights(
    b: Backend, dec: Decomposition, alphas: np.ndarray, dtype: str
) -> tuple[Array, Array]:
    """Per-alpha column factors ``c`` (a, k) of the residual GEMM and LOO weights ``1/(n (1-h)^2)`` (a, n).

    ``c`` is the shrink factor ``g = alpha / (s^2 + alpha)`` when ``U`` spans every
    centred target (residual ``U diag(g) U^T y``), else the fit factor
    ``1 - g = s^2 / (s^2 + alpha)`` (residual ``y_c - U diag(1 - g) U^T y``); see
    :func:`_loo_chunk`.  Computed in float64 (tiny: O(n k a)) and cast to the
    working dtype.  A zero denominator (a sample with leverage 1) gives an
    infinite weight, i.e. an infinite LOO error for that alpha, which therefore
    is never selected.
    """
    n = dec.U64.shape[0]
    al = b.asarray(alphas, "float64")
    s2 = dec.s * dec.s
    g = al[:, None] / (s2[None, :] + al[:, None])  # (a, k)
    one_minus_h = dec.lev_perp[None, :] + b.matmul(g, (dec.U64 * dec.U64).T)  # (a, n)
    with np.errstate(divide="ignore"):
        w = 1.0 / (n * one_minus_h * one_minus_h)
    c = g if dec.spans_complement else s2[None, :] / (s2[None, :] + al[:, None])
    return b.asarray(c, dtype), b.asarray(w, dtype)


def _filters(b: Backend, s: Array, alphas: np.ndarray, dtype: str) -> Array:
    """Coefficient filter factors ``s / (s^2 + alpha)`` as an (a, k) array."""
    al = b.asarray(alphas, "float64")
    return b.asarray(s[None, :] / (s[None, :] * s[None, :] + al[:, None]), dtype)


#: Budget for precomputing one scaled copy of a fixed GEMM operand per alpha
#: (e.g. ``U diag(g_a)``).  Within it, the per-chunk work per alpha is exactly
#: one GEMM; beyond it, the chunk operand is rescaled per alpha instead.
SCALED_OPERAND_BUDGET_BYTES: int = 512 * 2**20


def _scaled_columns(
    b: Backend, M: Array, factors: Array, budget_items: int
) -> list[Array] | None:
    """``[M * factors[a] for a]`` (column scaling), or ``None`` if over budget."""
    if factors.shape[0] * M.shape[0] * M.shape[1] > budget_items:
        return None
    return [b.asarray(M * factors[a]) for a in range(factors.shape[0])]


def _loo_chunk(
    b: Backend,
    dec: Decomposition,
    Yt: Array,
    c: Array,
    w: Array,
    Uc: list[Array] | None,
) -> tuple[Array, Array, Array | None]:
    """LOO mean squared errors (a, c) for one *raw* target-major chunk ``Yt`` (c, n).

    Also returns ``Zt = Yc @ U`` (c, k), shared by all alphas and the refit,
    and the chunk's means (``None`` without intercept).  ``Yt`` is centred in
    place.  Per alpha: one GEMM with the centred targets subtracted inside it
    (``y_c - U diag(1-g) z``, the negated residual; or ``U diag(g) z`` when ``U``
    spans every centred target), one in-place square and one matrix-vector
    product with the leverage weights.

    Why not ``y_perp + U diag(g) z``: forming ``y_perp = y_c - U z`` is one more
    n x k x c GEMM per chunk (12 instead of 11 for 10 alphas); float32 rounding
    of both forms is ~eps * |y_c|, and near-ties are re-scored in float64 anyway.
    """
    n_alphas = c.shape[0]
    Za = b.linear(Yt, dec.Uat)  # (c, k[+1]): U^T y and sqrt(n) mean(y)
    Zt, y_mean = dec.split(b, Za)
    del Za
    Yc = None
    if not dec.spans_complement:
        Yc = Yt
        if y_mean is not None:
            Yc -= y_mean[:, None]
    errors = b.zeros((n_alphas, Yt.shape[0]), b.dtype_of(Yt))
    for a in range(n_alphas):
        x, wt = (Zt, Uc[a]) if Uc is not None else (Zt * c[a], dec.U)
        R = b.linear(x, wt) if Yc is None else b.linear_add(x, wt, Yc, beta=-1.0)
        errors[a] = b.matmul(b.square_(R), w[a])
        del R, x
    return errors, Zt, y_mean


#: Relative slack of the pruning test in :func:`_loo_chunk_pruned`: an alpha is
#: skipped only if its LOO error is provably above the best upper bound by more
#: than this.  10x :data:`REFINE_RTOL`, so every near-tie the float64 re-scoring
#: looks at is still scored, and far above float32 rounding (~1e-6).
PRUNE_RTOL: float = 1e-3


@dataclass
class _LooBounds:
    """Per-fit operands of the LOO error bounds (see :func:`_loo_chunk_pruned`)."""

    g: Array  # (a, k) shrink factors alpha / (s^2 + alpha), working dtype
    g2: Array  # (a, k) g^2: ||U diag(g) z||^2 = (z^2) . g^2 because U is orthonormal
    Ug: list[Array] | None  # [U diag(g_a)] within the memory budget
    Wm: Array  # (2a, n): LOO weights w_a, then (w_a - mean w_a)^2 / w_a
    w_lo: np.ndarray  # (a,) min_i w_a,i
    w_hi: np.ndarray  # (a,) max_i w_a,i


def _prepare_bounds(
    b: Backend, dec: Decomposition, alphas: np.ndarray, dtype: str, budget_items: int
) -> _LooBounds | None:
    """Operands of the bounds (float64 maths, cast to ``dtype``); ``None`` when a weight is infinite."""
    n = dec.U64.shape[0]
    al = b.asarray(alphas, "float64")
    s2 = dec.s * dec.s
    g = al[:, None] / (s2[None, :] + al[:, None])  # (a, k)
    one_minus_h = dec.lev_perp[None, :] + b.matmul(g, (dec.U64 * dec.U64).T)  # (a, n)
    if float(b.to_numpy(one_minus_h).min()) <= 0.0:
        return None  # a sample with leverage 1: keep the exact path's inf handling
    w = 1.0 / (n * one_minus_h * one_minus_h)
    d = (w - b.mean(w, 1)[:, None]) ** 2 / w
    w_np = b.to_numpy(w)
    gd = b.asarray(g, dtype)
    return _LooBounds(
        g=gd,
        g2=b.asarray(g * g, dtype),
        Ug=_scaled_columns(b, dec.U, gd, budget_items),
        Wm=b.asarray(b.concat([w, d], 0), dtype),
        w_lo=w_np.min(1),
        w_hi=w_np.max(1),
    )


def _loo_chunk_pruned(
    b: Backend, dec: Decomposition, Yt: Array, lb: _LooBounds
) -> tuple[Array, Array, Array | None]:
    """:func:`_loo_chunk` that scores exactly only the alphas that can still win.

    Why: with ``r = y_perp + v``, ``v = U diag(g) z``, the LOO error is
    ``E = A + B + 2C`` with ``A = sum_i w_i y_perp_i^2`` (one n x 2a product for
    all alphas), ``B = sum_i w_i v_i^2`` in ``[min w, max w] * ||v||^2`` where
    ``||v||^2 = sum_j g_j^2 z_j^2`` (U is orthonormal; one k x a product), and,
    because ``y_perp`` is orthogonal to ``v``, ``C = sum_i (w_i - mean w) y_perp_i v_i``,
    so ``|C| <= sqrt(D B)`` with ``D = sum_i (w_i - mean w)^2 / w_i y_perp_i^2``
    (Cauchy-Schwarz; D comes from the same n x 2a product as A).  The leverage
    weights vary little when n >> k (max/min w <= 1.2 on the benchmark), so the
    interval is narrow: ~2 of 10 alphas per voxel survive
    ``lower(alpha) <= min upper * (1 + PRUNE_RTOL)`` and only those get the exact
    n x k GEMM.  Skipped alphas are provably not the minimum and are returned
    as NaN (never selected; ``all_scores=True`` scores every alpha).  When the
    weights vary a lot nothing is pruned and the cost is one GEMM more than
    :func:`_loo_chunk` (the ``y_perp`` product).
    """
    n_alphas = lb.g.shape[0]
    dtype = b.dtype_of(Yt)
    Za = b.linear(Yt, dec.Uat)  # (c, k[+1]): U^T y and sqrt(n) mean(y)
    neg_yperp = b.linear_add(Za, dec.Ua, Yt, beta=-1.0)  # centring and projection fused
    Zt, y_mean = dec.split(b, Za)
    del Za

    def host(x: Array) -> np.ndarray:
        return b.to_numpy(b.astype(x, "float64"))

    AD = host(b.linear(neg_yperp * neg_yperp, lb.Wm))  # (c, 2a)
    A, D = AD[:, :n_alphas], np.maximum(AD[:, n_alphas:], 0.0)
    nv = np.maximum(host(b.linear(Zt * Zt, lb.g2)), 0.0)  # (c, a): ||v||^2
    cross = 2.0 * np.sqrt(D * lb.w_hi * nv)
    upper = (A + lb.w_hi * nv + cross).min(1, keepdims=True)
    keep = (A + lb.w_lo * nv - cross) <= upper * (1.0 + PRUNE_RTOL)  # (c, a)
    errors = b.asarray(np.full((n_alphas, Yt.shape[0]), np.nan), dtype)
    for a in range(n_alphas):
        rows = np.flatnonzero(keep[:, a])
        if rows.size == 0:
            continue
        ri = None if rows.size == keep.shape[0] else b.index(rows)
        x = Zt if ri is None else Zt[ri]
        yp = neg_yperp if ri is None else neg_yperp[ri]
        x, wt = (x, lb.Ug[a]) if lb.Ug is not None else (x * lb.g[a], dec.U)
        e = b.matmul(b.square_(b.linear_add(x, wt, yp, beta=-1.0)), lb.Wm[a])
        if ri is None:
            errors[a] = e
        else:
            errors[a, ri] = e
        del x, yp
    return errors, Zt, y_mean


def _refit_chunk(
    b: Backend,
    dec: Decomposition,
    Zt: Array,
    filt_t: Array,
    best: Array,
    y_mean: Array | None,
) -> tuple[Array, Array | None]:
    """Coefficients (c, p) for every target with its own alpha, in ONE matmul.

    Row ``t`` of ``Zt`` is scaled by the filter factors of alpha ``best[t]``;
    ``(F[best] * Zt) @ V^T`` then equals grouping targets by alpha and doing
    one matmul per group, without the grouping or a loop over alphas.
    """
    coef_t = b.linear(filt_t[best] * Zt, dec.V)  # (c, p)
    intercept = None
    if y_mean is not None:
        intercept = y_mean - b.matmul(coef_t, b.astype(dec.x_mean, b.dtype_of(coef_t)))
    return coef_t, intercept


def _load_chunk(b: Backend, Y: Any, sl: slice, dtype: str) -> Array:
    """Columns ``sl`` of the (n, t) target array as a contiguous target-major (c, n) block.

    Target-major blocks make every per-target reduction a contiguous row
    reduction and every big product an NT GEMM against a fixed operand.
    """
    return b.asarray(Y[:, sl].T, dtype, copy=True)  # fresh: centred in place later


def _select(b: Backend, scores: Array, scoring: Scoring) -> Array:
    """Best alpha index per target; NaN never wins; ties go to the first alpha (sklearn)."""
    if scoring == "mse":
        return b.argmin(b.nan_to_value(scores, math.inf), 0)
    return b.argmax(b.nan_to_value(scores, -math.inf), 0)


def _select_np(scores: np.ndarray, scoring: Scoring) -> np.ndarray:
    """:func:`_select` on host arrays."""
    if scoring == "mse":
        return np.argmin(np.where(np.isnan(scores), np.inf, scores), 0)
    return np.argmax(np.where(np.isnan(scores), -np.inf, scores), 0)


#: In float32 LOO, targets whose two lowest LOO errors are within this relative
#: gap are re-scored in float64.  float32 LOO errors are accurate to ~1e-6
#: relative (measured: median 1.4e-7, max 1.1e-6 on 40 000 voxels), so a
#: 1e-4 margin leaves ~100x headroom; ~1% of targets fall in it.
REFINE_RTOL: float = 1e-4


class _Float64Refiner:
    """Re-score float32 near-ties in float64 so float32 mode picks sklearn's alphas.

    Why: two alphas can have LOO errors closer than float32 can resolve
    (we saw a 1.9e-7 relative gap among 40 000 voxels); the float32 choice
    is then a coin flip.  Recomputing only those few targets in float64
    (the float64 decomposition already exists) costs ~1% of the fit and makes
    the choice identical to float64 / sklearn in practice.
    """

    def __init__(self, b: Backend, dec: Decomposition, alphas: np.ndarray) -> None:
        self.b, self.dec, self.alphas = b, dec, alphas
        self._dec64: Decomposition | None = None
        self._gw: tuple[Array, Array] | None = None

    def _setup(self) -> tuple[Decomposition, Array, Array]:
        if self._dec64 is None:
            d = self.dec
            Ua, Uat = _augment(self.b, d.U64, d.fit_intercept, "float64")
            self._dec64 = Decomposition(
                U=d.U64, Ua=Ua, Uat=Uat, s=d.s, V=d.V, x_mean=d.x_mean,
                lev_perp=d.lev_perp, spans_complement=d.spans_complement,
                fit_intercept=d.fit_intercept, U64=d.U64,
            )  # fmt: skip
            self._gw = _loo_weights(self.b, self._dec64, self.alphas, "float64")
        assert self._gw is not None
        return self._dec64, *self._gw

    def refine(self, Y: Any, start: int, scores: np.ndarray) -> bool:
        """Overwrite near-tie columns of ``scores`` (host, float64) in place; True if any."""
        if scores.shape[0] < 2:
            return False
        two = np.partition(scores, 1, axis=0)[:2]
        amb = np.flatnonzero(two[1] - two[0] <= REFINE_RTOL * np.abs(two[0]))
        if amb.size == 0:
            return False
        dec64, g64, w64 = self._setup()
        cols = start + amb
        if hasattr(Y, "detach"):  # torch tensor (maybe on another device)
            import torch

            cols = torch.as_tensor(cols, device=Y.device)
        Yt = self.b.asarray(Y[:, cols].T, "float64", copy=True)
        errors, _, _ = _loo_chunk(self.b, dec64, Yt, g64, w64, None)
        scores[:, amb] = self.b.to_numpy(errors)
        return True


def solve_ridge_cv(
    X: Any,
    Y: Any,
    alphas: Any,
    *,
    cv: CV = "loo",
    fit_intercept: bool = True,
    scoring: Scoring = "mse",
    backend: str | Backend = "auto",
    dtype: str = "float32",
    n_targets_batch: int | None = DEFAULT_TARGETS_BATCH,
    refit: bool = True,
    all_scores: bool = False,
) -> RidgeCVResult:
    """Ridge regression with a per-target alpha chosen by LOO or K-fold CV.

    Parameters
    ----------
    X : (n_samples, n_features) array (NumPy or torch), assumed finite.
    Y : (n_samples, n_targets) array (NumPy or torch), assumed finite.
        It is read chunk by chunk and never copied whole.
    alphas : grid of positive regularisation strengths (order defines tie-breaks).
    cv : ``"loo"`` (efficient leave-one-out, as sklearn ``RidgeCV``), an int
        (contiguous K-fold), a sequence of ``(train, val)`` index pairs, or a
        splitter with ``split``.  LOO only supports ``scoring="mse"``.
    fit_intercept : centre X and Y (per fold for K-fold) and fit an
        unpenalised intercept.
    scoring : ``"mse"`` (minimised) or ``"r2"`` (maximised; K-fold only).
        K-fold scores are averaged over folds, like himalaya / GridSearchCV.
    backend, dtype : see :func:`harness.kit.ridge.backend.get_backend`; ``dtype`` is
        the working precision of the large products.
    n_targets_batch : targets per chunk (``None``: all at once).
    refit : also return coefficients refit on all samples with each target's alpha.
    all_scores : in LOO mode, score every alpha exactly.  By default alphas that
        a bound proves cannot be a target's minimum are skipped (NaN in
        ``cv_scores``; see :func:`_loo_chunk_pruned`); the chosen alphas are the
        same either way and the finite scores agree to float32 rounding.

    Input validation (shapes, NaN) is the estimator's job; this function
    trusts its inputs to stay fast.
    """
    b = get_backend(backend)
    alphas = check_alphas(alphas)
    if scoring not in ("mse", "r2"):
        raise ValueError(f"scoring must be 'mse' or 'r2', got {scoring!r}")
    n, p = X.shape
    n_targets = Y.shape[1]
    batch = n_targets if not n_targets_batch else max(1, int(n_targets_batch))
    splits = resolve_cv(cv, n)
    if splits == "loo" and scoring != "mse":
        raise ValueError(
            "cv='loo' only supports scoring='mse' (efficient LOO gives squared errors)"
        )
    if splits == "loo" and n < 2 + int(fit_intercept):
        raise ValueError(
            f"leave-one-out needs at least {2 + int(fit_intercept)} samples, got {n}"
        )

    X64 = b.asarray(X, "float64")
    n_alphas = alphas.size
    best_idx = np.empty(n_targets, dtype=np.intp)
    cv_scores = np.empty((n_alphas, n_targets), dtype=np.float64)
    coef = np.empty((p, n_targets), dtype=dtype) if refit else None
    intercept = np.zeros(n_targets, dtype=dtype) if refit else None

    budget = SCALED_OPERAND_BUDGET_BYTES // np.dtype(dtype).itemsize
    full = None
    if splits == "loo" or refit:
        full = decompose(b, X64, fit_intercept, dtype)
        filt_t = _filters(b, full.s, alphas, dtype)
    if splits == "loo":
        c, w = _loo_weights(b, full, alphas, dtype)
        bounds = (
            None
            if all_scores or full.spans_complement
            else _prepare_bounds(b, full, alphas, dtype, budget)
        )
        Uc = None if bounds is not None else _scaled_columns(b, full.U, c, budget)
    else:
        folds = _prepare_folds(b, X64, splits, alphas, fit_intercept, dtype, budget)

    refiner = (
        _Float64Refiner(b, full, alphas)
        if splits == "loo" and dtype == "float32"
        else None
    )

    for start in range(0, n_targets, batch):
        sl = slice(start, min(start + batch, n_targets))
        Yt = _load_chunk(b, Y, sl, dtype)  # (c, n), raw (not centred)
        if splits == "loo":
            scores, Zt, y_mean = (
                _loo_chunk(b, full, Yt, c, w, Uc)
                if bounds is None
                else _loo_chunk_pruned(b, full, Yt, bounds)
            )
        else:
            scores = _kfold_chunk_scores(b, folds, Yt, scoring)
        cv_scores[:, sl] = b.to_numpy(scores)
        if refiner is not None and refiner.refine(Y, start, cv_scores[:, sl]):
            best = b.index(_select_np(cv_scores[:, sl], "mse"))
        else:
            best = _select(b, scores, scoring if splits != "loo" else "mse")
        best_idx[sl] = b.to_numpy(best)
        if refit:
            if splits != "loo":
                Zt, y_mean = full.split(b, b.linear(Yt, full.Uat))  # U^T y, all samples
            coef_t, icpt = _refit_chunk(b, full, Zt, filt_t, best, y_mean)
            coef[:, sl] = b.to_numpy(coef_t).T
            if icpt is not None:
                intercept[sl] = b.to_numpy(icpt)
        del Yt
    return RidgeCVResult(
        best_alphas=alphas[best_idx],
        best_alpha_indices=best_idx,
        cv_scores=cv_scores,
        coef=coef,
        intercept=intercept,
        factorisation=full.route if full is not None else "",
    )


@dataclass
class _Fold:
    """Per-fold precomputation shared by all target chunks and all alphas."""

    train: Array
    val: Array
    Uat: Array  # (k[+1], n_train): projects raw training targets (and their means)
    A: Array  # (n_val, k[+1]): [(Xval - mean_train) V, 1/sqrt(n_train)]
    f_aug: Array  # (a, k[+1]): [s / (s^2 + alpha), 1], one row per alpha
    Af: list[Array] | None  # [A * f_aug[a]] when within the memory budget


def _prepare_folds(
    b: Backend,
    X64: Array,
    splits: list[tuple[np.ndarray, np.ndarray]],
    alphas: np.ndarray,
    fit_intercept: bool,
    dtype: str,
    budget_items: int,
) -> list[_Fold]:
    """One decomposition per fold (shared by every alpha and target chunk).

    Validation predictions are ``A diag(s/(s^2+alpha)) U^T Ytrain_c + mean(Ytrain)``
    with ``A = (Xval - mean_train) V``.  Appending ``1/sqrt(n_train)`` to ``A``
    (and 1 to the filter) adds the training mean inside the GEMM, because the
    projection on ``Ua`` carries ``sqrt(n_train) mean``; with ``A diag(f)``
    precomputed, each alpha costs exactly one ``n_val x k x c`` GEMM.
    """
    folds = []
    per_alpha_items = 0
    for train, val in splits:
        tr, va = b.index(train), b.index(val)
        dec = decompose(b, X64[tr], fit_intercept, dtype)
        A = b.matmul(X64[va] - dec.x_mean, b.asarray(dec.V, "float64"))
        f = _filters(b, dec.s, alphas, "float64")
        if fit_intercept:
            n_tr = len(train)
            A = b.concat(
                [A, b.asarray(np.full((len(val), 1), 1.0 / math.sqrt(n_tr)))], 1
            )
            f = b.concat([f, b.asarray(np.ones((len(alphas), 1)))], 1)
        A, f = b.asarray(A, dtype), b.asarray(f, dtype)
        per_alpha_items += len(alphas) * A.shape[0] * A.shape[1]
        folds.append(_Fold(train=tr, val=va, Uat=dec.Uat, A=A, f_aug=f, Af=None))
    if per_alpha_items <= budget_items:
        for fold in folds:
            fold.Af = _scaled_columns(b, fold.A, fold.f_aug, budget_items)
    return folds


def _kfold_chunk_scores(
    b: Backend, folds: list[_Fold], Yt: Array, scoring: Scoring
) -> Array:
    """Mean-over-folds validation MSE or R² (a, c) for one raw target-major chunk (c, n)."""
    n_alphas = folds[0].f_aug.shape[0]
    dtype = b.dtype_of(Yt)
    total = b.zeros((n_alphas, Yt.shape[0]), "float64")
    for f in folds:
        Yv = b.asarray(Yt[:, f.val])
        Za = b.linear(
            b.asarray(Yt[:, f.train]), f.Uat
        )  # (c, k[+1]): U^T y_c, sqrt(n) mean
        n_val = Yv.shape[1]
        if scoring == "r2":
            dev = Yv - b.astype(b.mean(Yv, 1, "float64"), dtype)[:, None]
            sst = b.astype(b.sumsq(dev, 1), "float64")
            del dev
        for a in range(n_alphas):
            x, wt = (Za, f.Af[a]) if f.Af is not None else (Za * f.f_aug[a], f.A)
            E = b.linear_add(x, wt, Yv, beta=-1.0)  # prediction - truth, (c, n_val)
            sse = b.astype(b.sumsq(E, 1), "float64")
            del E, x
            if scoring == "mse":
                total[a] += sse / n_val
            else:
                r2 = 1.0 - sse / sst
                r2[sst == 0] = 0.0  # constant validation target: himalaya's convention
                total[a] += r2
    return total / len(folds)


def ridge_loo_alphas(
    X: Any,
    Y: Any,
    alphas: Any,
    *,
    fit_intercept: bool = True,
    backend: str | Backend = "auto",
    dtype: str = "float32",
    n_targets_batch: int | None = DEFAULT_TARGETS_BATCH,
    all_scores: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-target best alpha by efficient leave-one-out, without the refit.

    Returns ``(best_alphas (n_targets,), loo_mse (n_alphas, n_targets))``; the
    selection matches ``sklearn.linear_model.RidgeCV(alphas,
    alpha_per_target=True)`` (first alpha in the list wins ties).  Useful when
    only the hyper-parameters are needed (e.g. to reuse across feature sets).
    ``all_scores=False`` is faster and leaves NaN where an alpha provably cannot win.
    """
    res = solve_ridge_cv(
        X,
        Y,
        alphas,
        cv="loo",
        fit_intercept=fit_intercept,
        backend=backend,
        dtype=dtype,
        n_targets_batch=n_targets_batch,
        refit=False,
        all_scores=all_scores,
    )
    return res.best_alphas, res.cv_scores
