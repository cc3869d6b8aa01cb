"""harness.kit.ridge against independent references.

Why these references: scikit-learn's ``RidgeCV(alpha_per_target=True)`` is the
de-facto definition of efficient-LOO per-target ridge (our LOO mode must
reproduce its choices), a brute-force loop over sklearn ``Ridge`` is the
definition of K-fold CV, a literal leave-one-out loop checks the closed-form
shortcut itself, and himalaya's ``RidgeCV`` is what encoding-model code uses in
practice.  Sizes are tiny so the whole file runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.model_selection import KFold

from harness.kit.ridge import RidgeCV, get_backend, ridge_loo_alphas
from harness.kit.ridge.solvers import kfold_splits, solve_ridge_cv

ALPHAS = np.logspace(-2, 5, 8)
BACKENDS = ["numpy", "torch"]


def make_data(
    n: int, p: int, t: int, seed: int = 0, noise_scale: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features, a planted linear signal whose SNR varies by target
    (so different targets prefer different alphas), an offset (so intercepts
    matter), and a held-out set drawn from the same model."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((p, p)) / np.sqrt(p) + np.eye(p)
    X = rng.standard_normal((n + 20, p)) @ mix + 0.5
    W = rng.standard_normal((p, t)) * rng.uniform(0.0, 1.0, t) ** 2
    Y = X @ W + noise_scale * rng.standard_normal((n + 20, t)) + rng.normal(0, 5, t)
    return X[:n], Y[:n], X[n:], Y[n:]


REGIMES = {"n>p": (60, 15, 40), "p>n": (25, 50, 40)}


# --------------------------------------------------------------------------- LOO vs sklearn
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("regime", list(REGIMES))
def test_loo_float64_matches_sklearn_exactly(regime: str, backend: str) -> None:
    X, Y, Xt, _ = make_data(*REGIMES[regime])
    sk = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    ours = RidgeCV(ALPHAS, backend=backend, dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(ours.best_alphas_, sk.alpha_)
    assert len(np.unique(sk.alpha_)) >= 3, "data should exercise several alphas"
    np.testing.assert_allclose(ours.predict(Xt), sk.predict(Xt), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.coef_, sk.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, rtol=1e-9, atol=1e-9)
    # cv_scores_ holds the LOO MSE (NaN where an alpha provably cannot win); sklearn keeps minus its minimum.
    np.testing.assert_allclose(np.nanmin(ours.cv_scores_, 0), -sk.best_score_, rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("regime", list(REGIMES))
def test_loo_float32_close_to_sklearn(regime: str, backend: str) -> None:
    X, Y, Xt, _ = make_data(*REGIMES[regime], seed=1)
    sk = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    ours = RidgeCV(ALPHAS, backend=backend, dtype="float32").fit(
        X.astype(np.float32), Y.astype(np.float32)
    )
    assert ours.coef_.dtype == np.float32
    assert np.mean(ours.best_alphas_ == sk.alpha_) >= 0.95
    same = ours.best_alphas_ == sk.alpha_
    pred, ref = ours.predict(Xt)[:, same], sk.predict(Xt)[:, same]
    np.testing.assert_allclose(pred, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    np.testing.assert_allclose(
        np.nanmin(ours.cv_scores_, 0)[same], -sk.best_score_[same], rtol=1e-3
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_near_ties_are_rescored_in_float64(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the near-tie margin opened to everything, float32 LOO == float64 LOO."""
    from harness.kit.ridge import solvers

    X, Y, _, _ = make_data(*REGIMES["n>p"], seed=17)
    ref = RidgeCV(ALPHAS, backend=backend, dtype="float64", all_scores=True).fit(X, Y)
    monkeypatch.setattr(solvers, "REFINE_RTOL", np.inf)
    Yin = (
        torch.from_numpy(Y) if backend == "torch" else Y
    )  # exercises the tensor gather
    f32 = RidgeCV(ALPHAS, backend=backend, dtype="float32", n_targets_batch=7).fit(
        X, Yin
    )
    np.testing.assert_array_equal(f32.best_alphas_, ref.best_alphas_)
    np.testing.assert_allclose(f32.cv_scores_, ref.cv_scores_, rtol=1e-10)
    assert f32.coef_.dtype == np.float32


def test_loo_scores_equal_literal_leave_one_out() -> None:
    """The closed form is exact LOO for ridge with an unpenalised intercept."""
    X, Y, _, _ = make_data(14, 4, 3, seed=2)
    ours = RidgeCV(ALPHAS, backend="numpy", dtype="float64", all_scores=True).fit(X, Y)
    brute = np.zeros((len(ALPHAS), Y.shape[1]))
    for i, alpha in enumerate(ALPHAS):
        for k in range(X.shape[0]):
            keep = np.arange(X.shape[0]) != k
            pred = Ridge(alpha=alpha).fit(X[keep], Y[keep]).predict(X[k : k + 1])
            brute[i] += ((pred - Y[k]) ** 2)[0] / X.shape[0]
    np.testing.assert_allclose(ours.cv_scores_, brute, rtol=1e-9)


def test_ties_pick_first_alpha_in_list_like_sklearn() -> None:
    X, Y, _, _ = make_data(30, 6, 12, seed=3)
    Y[:, 0] = 0.0  # every alpha gives zero error: a pure tie
    alphas = np.array([10.0, 1.0, 1.0, 1000.0, 0.1])  # unsorted, with a duplicate
    sk = SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    ours = RidgeCV(alphas, backend="numpy", dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(ours.best_alphas_, sk.alpha_)
    assert ours.best_alpha_indices_[0] == 0
    assert not np.any(ours.best_alpha_indices_ == 2), (
        "duplicate alpha must lose the tie to its first copy"
    )


def test_ridge_loo_alphas_function() -> None:
    X, Y, _, _ = make_data(40, 10, 9, seed=4)
    best, errors = ridge_loo_alphas(X, Y, ALPHAS, backend="numpy", dtype="float64")
    sk = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(X, Y)
    np.testing.assert_array_equal(best, sk.alpha_)
    assert errors.shape == (len(ALPHAS), Y.shape[1])


def test_no_intercept_matches_sklearn() -> None:
    X, Y, Xt, _ = make_data(50, 12, 10, seed=5)
    sk = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=False).fit(X, Y)
    ours = RidgeCV(ALPHAS, fit_intercept=False, backend="numpy", dtype="float64").fit(
        X, Y
    )
    np.testing.assert_array_equal(ours.best_alphas_, sk.alpha_)
    np.testing.assert_allclose(ours.predict(Xt), sk.predict(Xt), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_factorisation_route_and_ill_conditioned_fallback(backend: str) -> None:
    """Tall designs are factorised through eigh(Xc^T Xc); a near-collinear design
    (cond^2 ~ 1e13) fails its orthonormality check, LAPACK's SVD takes over, and the
    fit still equals scikit-learn's."""
    X, Y, Xt, _ = make_data(60, 15, 12, seed=3)
    m = RidgeCV(ALPHAS, backend=backend, dtype="float64").fit(X, Y)
    assert m.factorisation_.startswith("eigh(Xc^T Xc)"), m.factorisation_
    Xs, Xts = X.copy(), Xt.copy()
    rng = np.random.default_rng(0)
    Xs[:, -1] = Xs[:, 0] + 1e-6 * rng.standard_normal(len(X))
    Xts[:, -1] = Xts[:, 0]
    sk = SkRidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(Xs, Y)
    ours = RidgeCV(ALPHAS, backend=backend, dtype="float64").fit(Xs, Y)
    assert ours.factorisation_.startswith("svd(Xc) [gesdd]"), ours.factorisation_
    np.testing.assert_array_equal(ours.best_alphas_, sk.alpha_)
    np.testing.assert_allclose(ours.predict(Xts), sk.predict(Xts), rtol=1e-8, atol=1e-8 * np.abs(Y).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pruned_loo_skips_only_alphas_that_cannot_win(backend: str, dtype: str) -> None:
    """The default LOO path scores exactly only alphas whose error bound can beat the
    best upper bound; the skipped ones (NaN) must really be worse, and the fit
    must equal the one that scores every alpha."""
    X, Y, Xt, _ = make_data(400, 20, 300, seed=8)
    full = RidgeCV(ALPHAS, backend=backend, dtype=dtype, all_scores=True).fit(X, Y)
    fast = RidgeCV(ALPHAS, backend=backend, dtype=dtype).fit(X, Y)
    skipped = np.isnan(fast.cv_scores_)
    assert 0.3 < skipped.mean() < 1.0, "n >> p: most alphas should be pruned"
    assert not np.isnan(full.cv_scores_).any()
    np.testing.assert_array_equal(fast.best_alphas_, full.best_alphas_)
    np.testing.assert_allclose(fast.predict(Xt), full.predict(Xt), rtol=1e-6, atol=1e-6 * np.abs(Y).max())
    best = full.cv_scores_.min(0, keepdims=True)
    assert np.all(full.cv_scores_[skipped] > np.broadcast_to(best, skipped.shape)[skipped])
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(fast.cv_scores_[~skipped], full.cv_scores_[~skipped], rtol=tol)


# --------------------------------------------------------------------------- K-fold
def _bruteforce_kfold(
    X: np.ndarray,
    Y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    scoring: str = "mse",
) -> np.ndarray:
    scores = np.zeros((len(ALPHAS), Y.shape[1]))
    for train, val in folds:
        for i, alpha in enumerate(ALPHAS):
            pred = Ridge(alpha=alpha).fit(X[train], Y[train]).predict(X[val])
            sse = ((pred - Y[val]) ** 2).sum(0)
            if scoring == "mse":
                scores[i] += sse / len(val)
            else:
                scores[i] += 1 - sse / ((Y[val] - Y[val].mean(0)) ** 2).sum(0)
    return scores / len(folds)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("regime", list(REGIMES))
def test_kfold_matches_bruteforce_sklearn_ridge(regime: str, backend: str) -> None:
    X, Y, Xt, _ = make_data(*REGIMES[regime], seed=6)
    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    ours = RidgeCV(ALPHAS, cv=folds, backend=backend, dtype="float64").fit(X, Y)
    brute = _bruteforce_kfold(X, Y, folds)
    np.testing.assert_allclose(ours.cv_scores_, brute, rtol=1e-9)
    best = ALPHAS[np.argmin(brute, 0)]
    np.testing.assert_array_equal(ours.best_alphas_, best)
    ref = np.column_stack(
        [Ridge(alpha=a).fit(X, Y[:, j]).predict(Xt) for j, a in enumerate(best)]
    )
    np.testing.assert_allclose(ours.predict(Xt), ref, rtol=1e-9, atol=1e-9)


def test_kfold_int_cv_is_sklearn_kfold_and_r2_scoring() -> None:
    X, Y, _, _ = make_data(45, 10, 12, seed=7)
    for (tr, va), (tr2, va2) in zip(kfold_splits(45, 4), KFold(4).split(X), strict=True):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(va, va2)
    ours = RidgeCV(ALPHAS, cv=4, scoring="r2", backend="numpy", dtype="float64").fit(
        X, Y
    )
    brute = _bruteforce_kfold(X, Y, list(KFold(4).split(X)), scoring="r2")
    np.testing.assert_allclose(ours.cv_scores_, brute, rtol=1e-9)
    np.testing.assert_array_equal(ours.best_alphas_, ALPHAS[np.argmax(brute, 0)])


def test_kfold_matches_himalaya_with_same_folds() -> None:
    from himalaya.ridge import RidgeCV as HimRidgeCV

    X, Y, Xt, _ = make_data(60, 15, 30, seed=8)
    folds = list(KFold(5, shuffle=True, random_state=1).split(X))
    him = HimRidgeCV(alphas=ALPHAS, fit_intercept=True, cv=folds).fit(X, Y)
    ours = RidgeCV(ALPHAS, cv=folds, backend="numpy", dtype="float64").fit(X, Y)
    # himalaya rebuilds alphas as exp(-log(1/alpha)): equal up to round-off.
    np.testing.assert_allclose(
        ours.best_alphas_, np.asarray(him.best_alphas_), rtol=1e-12
    )
    np.testing.assert_allclose(
        ours.predict(Xt), np.asarray(him.predict(Xt)), rtol=1e-7, atol=1e-7
    )


# --------------------------------------------------------------------------- batching / backends
@pytest.mark.parametrize("cv", ["loo", 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_target_batching_gives_identical_results(cv: object, dtype: str) -> None:
    X, Y, Xt, _ = make_data(40, 12, 23, seed=9)
    one = RidgeCV(
        ALPHAS, cv=cv, backend="numpy", dtype=dtype, n_targets_batch=None
    ).fit(X, Y)
    many = RidgeCV(ALPHAS, cv=cv, backend="numpy", dtype=dtype, n_targets_batch=5).fit(
        X, Y
    )
    np.testing.assert_array_equal(one.best_alphas_, many.best_alphas_)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(one.cv_scores_, many.cv_scores_, rtol=tol)
    np.testing.assert_allclose(
        one.coef_, many.coef_, rtol=tol, atol=tol * np.abs(one.coef_).max()
    )
    np.testing.assert_allclose(
        one.predict(Xt), many.predict(Xt), rtol=tol, atol=tol * 100
    )


@pytest.mark.parametrize("cv", ["loo", 3])
def test_low_memory_path_matches(cv: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the memory budget, per-alpha scaled operands are built on the fly."""
    from harness.kit.ridge import solvers

    X, Y, _, _ = make_data(40, 12, 9, seed=16)
    ref = RidgeCV(ALPHAS, cv=cv, backend="numpy", dtype="float64").fit(X, Y)
    monkeypatch.setattr(solvers, "SCALED_OPERAND_BUDGET_BYTES", 0)
    low = RidgeCV(ALPHAS, cv=cv, backend="numpy", dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(low.best_alphas_, ref.best_alphas_)
    np.testing.assert_allclose(low.cv_scores_, ref.cv_scores_, rtol=1e-12)
    np.testing.assert_allclose(low.coef_, ref.coef_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cv", ["loo", 3])
@pytest.mark.parametrize("regime", list(REGIMES))
def test_torch_and_numpy_backends_agree(regime: str, cv: object) -> None:
    X, Y, Xt, _ = make_data(*REGIMES[regime], seed=10)
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
        a = RidgeCV(ALPHAS, cv=cv, backend="numpy", dtype=dtype).fit(X, Y)
        b = RidgeCV(ALPHAS, cv=cv, backend="torch", dtype=dtype).fit(
            torch.from_numpy(X), torch.from_numpy(Y)
        )
        assert isinstance(b.coef_, np.ndarray) and isinstance(b.predict(Xt), np.ndarray)
        if dtype == "float64":
            np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
        else:
            assert np.mean(a.best_alphas_ == b.best_alphas_) >= 0.95
        same = a.best_alphas_ == b.best_alphas_
        np.testing.assert_allclose(
            b.predict(torch.from_numpy(Xt))[:, same],
            a.predict(Xt)[:, same],
            rtol=tol,
            atol=tol * np.abs(Y).max(),
        )


def test_get_backend_names() -> None:
    assert get_backend("numpy").name == "numpy"
    assert get_backend("torch").name == "torch"
    assert get_backend("auto").name == (
        "torch_cuda" if torch.cuda.is_available() else "numpy"
    )
    assert get_backend(get_backend("numpy")) is get_backend("numpy")
    with pytest.raises(ValueError, match="unknown ridge backend"):
        get_backend("jax")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_backend("torch_cuda")


# --------------------------------------------------------------------------- API / validation
def test_one_dimensional_target_and_score() -> None:
    X, Y, Xt, Yt = make_data(50, 8, 3, seed=11)
    m = RidgeCV(ALPHAS, backend="numpy", dtype="float64").fit(X, Y[:, 0])
    sk = SkRidgeCV(alphas=ALPHAS).fit(X, Y[:, 0])
    assert m.coef_.shape == (8,) and m.predict(Xt).shape == (20,)
    assert m.best_alphas_[0] == sk.alpha_
    np.testing.assert_allclose(m.predict(Xt), sk.predict(Xt), rtol=1e-9)
    full = RidgeCV(ALPHAS, backend="numpy").fit(X, Y)
    r = full.score(Xt, Yt)
    expected = [np.corrcoef(full.predict(Xt)[:, j], Yt[:, j])[0, 1] for j in range(3)]
    np.testing.assert_allclose(r, expected, rtol=1e-5)


def test_nonfinite_inputs_raise_one_line_errors() -> None:
    X, Y, _, _ = make_data(20, 5, 4, seed=12)
    Xbad = X.copy()
    Xbad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X contains 1 non-finite"):
        RidgeCV(ALPHAS).fit(Xbad, Y)
    Ybad = Y.copy()
    Ybad[0, 0] = np.inf
    Ybad[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"^Y contains 2 non-finite"):
        RidgeCV(ALPHAS).fit(X, Ybad)
    with pytest.raises(ValueError, match=r"^Y contains 2 non-finite"):
        RidgeCV(ALPHAS).fit(torch.from_numpy(X), torch.from_numpy(Ybad))


def test_shape_and_parameter_errors() -> None:
    X, Y, _, _ = make_data(20, 5, 4, seed=13)
    with pytest.raises(
        ValueError, match=r"X has shape \(20, 5\) but Y has shape \(19, 4\)"
    ):
        RidgeCV(ALPHAS).fit(X, Y[:19])
    with pytest.raises(ValueError, match="X must be 2-D"):
        RidgeCV(ALPHAS).fit(X[:, 0], Y)
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        RidgeCV([1.0, -1.0]).fit(X, Y)
    with pytest.raises(ValueError, match="dtype must be"):
        RidgeCV(ALPHAS, dtype="float16").fit(X, Y)
    with pytest.raises(ValueError, match="only supports scoring='mse'"):
        RidgeCV(ALPHAS, scoring="r2").fit(X, Y)
    m = RidgeCV(ALPHAS, backend="numpy").fit(X, Y)
    with pytest.raises(
        ValueError, match="X has 4 features but the model was fitted with 5"
    ):
        m.predict(X[:, :4])


def test_input_arrays_are_not_modified() -> None:
    X, Y, _, _ = make_data(20, 5, 4, seed=14)
    Yf = np.asfortranarray(Y)  # a layout where a chunk transpose could alias the input
    X0, Y0 = X.copy(), Yf.copy()
    for backend in BACKENDS:
        for cv in ("loo", 3):
            RidgeCV(
                ALPHAS, cv=cv, backend=backend, dtype="float64", n_targets_batch=None
            ).fit(X, Yf)
            np.testing.assert_array_equal(X, X0)
            np.testing.assert_array_equal(Yf, Y0)


def test_solver_without_refit() -> None:
    X, Y, _, _ = make_data(30, 6, 5, seed=15)
    res = solve_ridge_cv(
        X, Y, ALPHAS, cv=3, backend="numpy", dtype="float64", refit=False
    )
    assert res.coef is None and res.intercept is None
    assert res.cv_scores.shape == (len(ALPHAS), 5)
