"""Benchmark harness.kit.ridge.RidgeCV against scikit-learn and himalaya in one run.

Why one run: the comparison is only meaningful on the same data, the same
machine state and the same BLAS settings, so every method is timed here back
to back on a synthetic encoding problem (stimuli x features -> voxels) with a
planted linear signal whose SNR varies across voxels (so the chosen alphas
spread over the grid, as in real fMRI data).

Methods timed (fit only; data already in memory in the dtype each method uses):

* harness RidgeCV, efficient LOO, float32 and float64 (``--backend``, default auto)
* scikit-learn RidgeCV(alphas, alpha_per_target=True), float64, efficient LOO
* himalaya RidgeCV, its default cv=5 (KFold), float32 (``--himalaya-backend``)
* harness RidgeCV with cv=5 and the very same folds (matched to himalaya)

himalaya with LOO folds (what "matched to harness LOO" would mean) needs one
SVD per sample (3000 SVDs) and is not affordable; it is reported as skipped.

Usage::

    python benchmarks/bench_ridge.py            # 3000 x 768 -> 40000 voxels
    python benchmarks/bench_ridge.py --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.kit.ridge import RidgeCV, get_backend


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--n-samples", type=int, default=3000, help="training stimuli (default 3000)"
    )
    p.add_argument("--n-features", type=int, default=768, help="features (default 768)")
    p.add_argument(
        "--n-targets", type=int, default=40000, help="voxels (default 40000)"
    )
    p.add_argument(
        "--n-test", type=int, default=500, help="held-out stimuli for prediction checks"
    )
    p.add_argument(
        "--n-alphas", type=int, default=10, help="alphas = logspace(-1, 8, n_alphas)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend", default="auto", help="harness backend: auto|torch|numpy|torch_cuda"
    )
    p.add_argument(
        "--n-targets-batch",
        type=int,
        default=None,
        help="harness chunk size (default: library default)",
    )
    p.add_argument("--himalaya-backend", default="numpy", choices=["numpy", "torch"])
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--skip-himalaya", action="store_true")
    p.add_argument(
        "--skip-float64", action="store_true", help="skip harness float64 LOO"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (600 x 200 -> 2000) for a smoke run",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.n_samples, args.n_features, args.n_targets, args.n_test = (
            600,
            200,
            2000,
            100,
        )
    return args


def make_data(
    n: int, p: int, t: int, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Correlated features with a decaying spectrum and a planted sparse-ish signal.

    Each voxel gets its own signal-to-noise ratio (log-uniform over ~3 decades)
    so the best alpha genuinely differs across voxels.  Generated in float32 to
    keep the 40 000-voxel problem small in memory.
    """
    rng = np.random.default_rng(seed)
    spectrum = (1.0 + np.arange(p)) ** -0.7
    basis, _ = np.linalg.qr(rng.standard_normal((p, p)))
    mix = (basis * spectrum).astype(np.float32)
    X = (rng.standard_normal((n + n_test, p), dtype=np.float32) @ mix.T) * 5.0 + 1.0
    W = rng.standard_normal((p, t), dtype=np.float32)
    W *= (rng.random((p, t), dtype=np.float32) < 0.2).astype(
        np.float32
    )  # sparse weights
    signal = X @ W
    signal /= signal[:n].std(0) + 1e-12
    snr = np.float32(10.0) ** rng.uniform(-2.0, 1.0, t).astype(np.float32)
    Y = signal * np.sqrt(snr) + rng.standard_normal((n + n_test, t), dtype=np.float32)
    Y += rng.normal(0.0, 3.0, t).astype(np.float32)
    del signal
    return X[:n], Y[:n], X[n:], Y[n:]


CPU_TIMES: dict[str, float] = {}


def timed(fn: Callable[[], Any], key: str) -> tuple[Any, float]:
    """Wall time of ``fn()``; process CPU time (all threads) is kept in ``CPU_TIMES``.

    Both are reported because the machine may be shared: CPU time is less
    sensitive to other users' load than wall time (though not immune to it).
    """
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    CPU_TIMES[key] = time.process_time() - c0
    return out, wall


def row(label: str, seconds: float) -> None:
    print(f"  {label:<58s} {seconds:8.2f} s")


def ratio(label: str, value: float) -> None:
    print(f"  {label:<58s} {value:8.2f}x")


def loadavg() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "load average n/a"


def blas_report(torch_mod: Any) -> list[str]:
    """Which BLAS/LAPACK each library runs on, with how many threads: the first thing to check when a fresh
    install is slower than a published figure (numpy's wheel brings OpenBLAS, torch's brings MKL; the ridge
    backends use one or the other, and a thread count of 1 or an oversubscribed pool changes every ratio)."""
    lines = []
    try:
        from threadpoolctl import threadpool_info

        for d in threadpool_info():
            lines.append(f"  threadpool {d.get('user_api')}: {d.get('internal_api')} {d.get('version') or ''} "
                         f"({d.get('num_threads')} threads, {d.get('architecture') or d.get('threading_layer') or ''}) "
                         f"from {Path(d.get('filepath', '')).name}")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        lines.append("  threadpoolctl not installed: numpy/scipy BLAS unknown")
    cfg = torch_mod.__config__.show()
    info = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]+)", cfg))
    lines.append(f"  torch BLAS {info.get('BLAS_INFO', '?')}, LAPACK {info.get('LAPACK_INFO', '?')}, "
                 f"mkl {torch_mod.backends.mkl.is_available()}, {torch_mod.get_num_threads()} intra-op threads; "
                 f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '<unset>')}, "
                 f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS', '<unset>')}, "
                 f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '<unset>')}")
    return lines


def gemm_library(backend: Any) -> str:
    """Which library runs the harness backend's float32 GEMMs (90 % of a LOO fit), with its thread count."""
    if backend.name == "numpy":
        try:
            from threadpoolctl import threadpool_info

            np_dir = Path(np.__file__).resolve().parent.parent  # numpy/ and numpy.libs/ live here
            blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
            blas.sort(key=lambda d: not str(d.get("filepath", "")).startswith(str(np_dir / "numpy")))
            if blas:
                d = blas[0]
                return (f"{d.get('internal_api')} {d.get('version') or ''} {d.get('architecture') or ''}, "
                        f"{d.get('num_threads')} threads")
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            pass
        return "numpy's BLAS"
    import torch

    lib = "oneDNN" if getattr(backend, "_onednn", False) else "MKL" if torch.backends.mkl.is_available() else "torch BLAS"
    return f"{lib} via torch, {torch.get_num_threads()} threads" if backend.device == "cpu" else f"cuBLAS on {backend.device}"


def column_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64) - a.mean(0)
    b = b.astype(np.float64) - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 0, (a * b).sum(0) / np.where(den > 0, den, 1), 0.0)


def compare(
    name: str, ours: np.ndarray, ref: np.ndarray, a_ours: np.ndarray, a_ref: np.ndarray
) -> None:
    """Print alpha agreement and held-out prediction differences.

    Alphas are compared with a relative tolerance because himalaya stores them
    in float32 and rebuilds them through exp/log; the grid steps by 10x, so
    1e-5 cannot confuse two grid points.  Per-target correlations of
    predictions can be low for targets whose chosen alpha is so large that the
    prediction is nearly constant, hence also the pooled correlation.
    """
    agree = np.isclose(a_ours, a_ref, rtol=1e-5)
    r = column_corr(ours, ref)
    pooled = column_corr(ours.reshape(-1, 1), ref.reshape(-1, 1))[0]
    diff = np.abs(ours.astype(np.float64) - ref)
    scale = np.abs(ref).max()
    print(f"  {name}")
    print(
        f"      chosen alpha agrees on {agree.mean():.4%} of targets ({int((~agree).sum())} of {agree.size} differ)"
    )
    print(
        f"      held-out predictions: max|diff| {diff.max():.3e} (relative to max|pred| {diff.max() / scale:.1e}); "
        f"corr pooled {pooled:.10f}, per-target median {np.median(r):.8f}, min {r.min():.6f}"
    )
    if (~agree).any():
        ratio = np.round(np.log10(a_ours[~agree] / a_ref[~agree]), 3)
        vals, cnt = np.unique(ratio, return_counts=True)
        print(
            "      where they differ, log10(alpha ours / alpha ref): "
            + ", ".join(f"{v:+g} ({c})" for v, c in zip(vals, cnt, strict=True))
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    n, p, t = args.n_samples, args.n_features, args.n_targets
    alphas = np.logspace(-1, 8, args.n_alphas)
    backend = get_backend(args.backend)
    print("=== harness.kit.ridge benchmark ===")
    print(
        f"data: {n} train stimuli x {p} features -> {t} targets, {args.n_test} held-out; "
        f"{len(alphas)} alphas logspace(-1, 8); seed {args.seed}"
    )
    onednn = getattr(backend, "_onednn", False)
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')}"
    )
    print("\n".join(blas_report(torch)))
    print(
        f"harness backend: {backend.name} on {backend.device}"
        + (" (oneDNN float32 GEMM)" if onednn else "")
        + f"; float32 GEMMs on {gemm_library(backend)}"
    )

    X, Y, Xt, Yt = make_data(n, p, t, args.n_test, args.seed)
    print(
        f"before timing: {loadavg()} (other processes on this machine slow every method down)"
    )
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    batch_kw = (
        {}
        if args.n_targets_batch is None
        else {"n_targets_batch": args.n_targets_batch}
    )

    # Warm-up every library on a tiny problem (imports, thread pools, JIT kernels).
    Xw, Yw = X[:50, :20].copy(), Y[:50, :30].copy()
    RidgeCV(alphas, backend=backend).fit(Xw, Yw)
    times: dict[str, float] = {}
    results: dict[str, Any] = {}

    print("\n--- wall times (fit) ---")

    def h32() -> RidgeCV:
        return RidgeCV(
            alphas, cv="loo", backend=backend, dtype="float32", **batch_kw
        ).fit(X, Y)

    results["h32"], times["h32"] = timed(h32, "h32")
    row(f"harness RidgeCV  LOO  float32 [{backend.name}]", times["h32"])
    print(f"  {'':<4s}harness factorisation: {results['h32'].factorisation_}; LOO errors scored exactly for "
          f"{np.isfinite(results['h32'].cv_scores_).mean():.1%} of (alpha, voxel) pairs, the rest bounded out")

    if not args.skip_float64:

        def h64() -> RidgeCV:
            return RidgeCV(
                alphas, cv="loo", backend=backend, dtype="float64", **batch_kw
            ).fit(X64, Y64)

        results["h64"], times["h64"] = timed(h64, "h64")
        row(f"harness RidgeCV  LOO  float64 [{backend.name}]", times["h64"])

    if not args.skip_sklearn:
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(
            Xw.astype(np.float64), Yw.astype(np.float64)
        )

        def sk() -> Any:
            return SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(X64, Y64)

        results["sk"], times["sk"] = timed(sk, "sk")
        row("sklearn RidgeCV  LOO  float64 (alpha_per_target=True)", times["sk"])

    folds = None
    if not args.skip_himalaya:
        import himalaya.backend
        from himalaya.ridge import RidgeCV as HimRidgeCV
        from sklearn.model_selection import KFold

        himalaya.backend.set_backend(args.himalaya_backend, on_error="raise")
        hb = himalaya.backend.get_backend()
        HimRidgeCV(alphas=alphas, fit_intercept=True).fit(Xw, Yw)

        def him() -> Any:
            return HimRidgeCV(alphas=alphas, fit_intercept=True, cv=5).fit(X, Y)

        results["him"], times["him"] = timed(him, "him")
        row(f"himalaya RidgeCV cv=5 float32 [{args.himalaya_backend}]", times["him"])
        results["him_pred"] = hb.to_numpy(results["him"].predict(Xt))
        results["him_alpha"] = hb.to_numpy(results["him"].best_alphas_)
        himalaya.backend.set_backend("numpy")

        folds = list(KFold(5).split(X))  # what himalaya's cv=5 uses

        def h_cv5() -> RidgeCV:
            return RidgeCV(
                alphas, cv=folds, backend=backend, dtype="float32", **batch_kw
            ).fit(X, Y)

        results["h_cv5"], times["h_cv5"] = timed(h_cv5, "h_cv5")
        row(
            f"harness RidgeCV  cv=5 float32 [{backend.name}] (same folds)",
            times["h_cv5"],
        )
        print(
            f"  {'himalaya RidgeCV LOO folds (matched to harness LOO)':<58s} skipped: one SVD per "
            f"sample ({n} SVDs of {n - 1}x{p}) is not affordable"
        )

    print(f"after timing: {loadavg()}")
    labels = {
        "h32": "harness LOO f32",
        "h64": "harness LOO f64",
        "sk": "sklearn",
        "him": "himalaya cv=5",
        "h_cv5": "harness cv=5",
    }
    print(
        "  process CPU seconds (all threads): "
        + ", ".join(f"{labels[k]} {v:.1f}" for k, v in CPU_TIMES.items())
    )

    print("\n--- speed-ups (baseline time / harness time) ---")
    if "sk" in times:
        ratio("harness LOO float32 vs sklearn LOO float64", times["sk"] / times["h32"])
        if "h64" in times:
            ratio(
                "harness LOO float64 vs sklearn LOO float64", times["sk"] / times["h64"]
            )
    if "him" in times:
        ratio(
            "harness LOO float32 vs himalaya cv=5 float32", times["him"] / times["h32"]
        )
        ratio(
            "harness cv=5 float32 vs himalaya cv=5 float32 (same folds)",
            times["him"] / times["h_cv5"],
        )

    print("\n--- agreement ---")
    pred32 = results["h32"].predict(Xt)
    if "sk" in results:
        sk_pred = results["sk"].predict(Xt.astype(np.float64))
        sk_alpha = np.asarray(results["sk"].alpha_)
        compare(
            "harness LOO float32 vs sklearn",
            pred32,
            sk_pred,
            results["h32"].best_alphas_,
            sk_alpha,
        )
        if "h64" in results:
            compare(
                "harness LOO float64 vs sklearn",
                results["h64"].predict(Xt.astype(np.float64)),
                sk_pred,
                results["h64"].best_alphas_,
                sk_alpha,
            )
    if "him" in results:
        compare(
            "harness cv=5 float32 vs himalaya cv=5",
            results["h_cv5"].predict(Xt),
            results["him_pred"],
            results["h_cv5"].best_alphas_,
            results["him_alpha"],
        )

    r = results["h32"].score(Xt, Yt)
    counts = {
        f"{a:g}": int(c)
        for a, c in zip(*np.unique(results["h32"].best_alphas_, return_counts=True), strict=True)
    }
    print(
        f"\nheld-out Pearson r (harness LOO float32): median {np.median(r):.3f}, 90th pct {np.percentile(r, 90):.3f}"
    )
    print(f"chosen alphas (harness LOO float32): {counts}")


if __name__ == "__main__":
    main()
