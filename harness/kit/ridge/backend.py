"""A tiny array-backend switch for the ridge solvers (himalaya-style).

Why this exists: the ridge maths in :mod:`harness.kit.ridge.solvers` is a handful of
dense linear-algebra operations (one SVD/eigendecomposition, a few large
matrix products, some element-wise arithmetic).  Writing it once against a
small namespace of operations lets the same code run on NumPy (whose OpenBLAS
is often the fastest CPU GEMM), on PyTorch CPU (multi-threaded element-wise
ops) and on PyTorch CUDA (orders of magnitude faster for 40 000 voxels),
without the solver knowing which one it is using.

Only operations that differ between NumPy and PyTorch are wrapped here;
arithmetic operators (``+ - * /``), slicing and integer-array indexing behave
the same in both libraries and are used directly on the arrays.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["BACKEND_NAMES", "Backend", "NumpyBackend", "TorchBackend", "get_backend"]

#: Names accepted by :func:`get_backend`.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "torch", "torch_cuda", "auto")

#: An array of whichever library the backend wraps (``np.ndarray`` or ``torch.Tensor``).
Array = Any

_DTYPES: tuple[str, ...] = ("float32", "float64")


def _check_dtype(dtype: str) -> str:
    """Normalise a dtype spec to ``"float32"``/``"float64"``.

    Only these two are supported because the solvers' accuracy reasoning
    (float64 decomposition, float32 bulk products) is written for them.
    """
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


#: Factorisations cheaper than this many flops (~1 s on one core) run
#: single-threaded on CPU; see :func:`_factorisation_threads`.
SMALL_FACTORISATION_FLOPS: float = 5e9


def _is_small_factorisation(shape: tuple[int, ...]) -> bool:
    """Whether a dense SVD/eigh of this shape is cheap enough to run on one thread.

    Why: LAPACK's SVD/eigh of a few-thousand-row matrix is a long chain of
    small, barrier-separated BLAS-2 calls.  Multi-threading gains little
    there, and when the CPU is oversubscribed (a shared 2-core box) every
    barrier waits for a descheduled thread: we measured the same 3000 x 768
    SVD take 0.3 s or 16 s.  One thread is immune and costs ~0.1 s extra.
    Large factorisations keep all threads, where parallelism pays.
    """
    m, n = int(shape[0]), int(shape[-1])
    return float(min(m, n)) ** 2 * max(m, n) <= SMALL_FACTORISATION_FLOPS


class Backend(ABC):
    """Namespace of the array operations the ridge solvers need.

    Subclasses implement the same methods for one array library.  Arrays
    returned by a backend are always C-contiguous so that BLAS calls never
    pay for hidden copies.
    """

    name: str = "abstract"
    device: str = "cpu"

    # -- conversion ---------------------------------------------------------
    @abstractmethod
    def asarray(self, x: Any, dtype: str | None = None, copy: bool = False) -> Array:
        """Convert ``x`` (NumPy array, torch tensor, list) to a contiguous backend array.

        ``copy=True`` guarantees fresh memory (the solvers then modify it in
        place without touching the caller's data) while still copying only once.
        """

    @abstractmethod
    def to_numpy(self, x: Array) -> np.ndarray:
        """Return ``x`` as a NumPy array on the host (no copy when already there)."""

    @abstractmethod
    def index(self, idx: np.ndarray) -> Array:
        """Convert an integer index array so it can index backend arrays."""

    @abstractmethod
    def zeros(self, shape: tuple[int, ...], dtype: str) -> Array:
        """Allocate a zero-filled array."""

    @abstractmethod
    def concat(self, arrays: list[Array], axis: int) -> Array:
        """Concatenate along ``axis``."""

    # -- linear algebra -----------------------------------------------------
    @abstractmethod
    def svd(self, x: Array) -> tuple[Array, Array, Array]:
        """Thin SVD ``x = U diag(s) Vt`` with ``s`` in descending order."""

    @abstractmethod
    def eigh(self, x: Array) -> tuple[Array, Array]:
        """Eigendecomposition of a symmetric matrix, eigenvalues ascending."""

    @abstractmethod
    def matmul(self, a: Array, b: Array) -> Array:
        """Matrix product ``a @ b``."""

    @abstractmethod
    def linear(self, x: Array, w: Array) -> Array:
        """Return ``x @ w.T`` (the "NT" GEMM, like ``torch.nn.functional.linear``).

        The solvers work target-major (targets along rows) so that every big
        product has this form with a *fixed* right operand (U, U^T or V); it
        is also the form oneDNN runs fastest on CPUs (see :class:`TorchBackend`).
        """

    @abstractmethod
    def linear_add(self, x: Array, w: Array, c: Array, beta: float = 1.0) -> Array:
        """Return ``x @ w.T + beta * c`` for ``beta`` in {1, -1}, fused with the GEMM when possible.

        Fusing saves a full pass over the largest array (the residual block),
        which matters because the per-alpha work is otherwise memory-bound
        around a compute-bound GEMM.
        """

    # -- reductions / element-wise -------------------------------------------
    @abstractmethod
    def sumsq(self, x: Array, axis: int) -> Array:
        """Sum of squares along ``axis`` in one pass, without a squared temporary."""

    @abstractmethod
    def square_(self, x: Array) -> Array:
        """Square ``x`` in place (avoids a temporary of the largest array) and return it."""

    @abstractmethod
    def mean(self, x: Array, axis: int, dtype: str | None = None) -> Array:
        """Mean along ``axis``; ``dtype`` sets the accumulator (float64 for accuracy)."""

    @abstractmethod
    def sum(self, x: Array, axis: int) -> Array:
        """Sum along ``axis``."""

    @abstractmethod
    def argmin(self, x: Array, axis: int) -> Array:
        """Index of the first minimum along ``axis`` (first wins ties, like sklearn)."""

    @abstractmethod
    def argmax(self, x: Array, axis: int) -> Array:
        """Index of the first maximum along ``axis``."""

    @abstractmethod
    def nan_to_value(self, x: Array, value: float) -> Array:
        """Replace NaNs by ``value`` so they never win an argmin/argmax."""

    @abstractmethod
    def clip_min(self, x: Array, lo: float) -> Array:
        """Element-wise ``max(x, lo)``."""

    @abstractmethod
    def sqrt(self, x: Array) -> Array:
        """Element-wise square root."""

    @abstractmethod
    def astype(self, x: Array, dtype: str) -> Array:
        """Cast to ``dtype`` (no copy when already that dtype)."""

    @abstractmethod
    def count_nonfinite(self, x: Array) -> int:
        """Number of NaN/inf entries (fast path: a finite sum proves there are none)."""

    @abstractmethod
    def dtype_of(self, x: Array) -> str:
        """Dtype of ``x`` as ``"float32"``/``"float64"`` (library-neutral spelling)."""

    def synchronize(self) -> None:  # noqa: B027 - a no-op is right for host backends
        """Wait for queued device work (only meaningful for CUDA; used for timing)."""

    def __repr__(self) -> str:
        return f"<ridge backend {self.name!r} on {self.device}>"


class NumpyBackend(Backend):
    """NumPy/SciPy implementation (OpenBLAS/LAPACK on the host)."""

    name = "numpy"
    device = "cpu"

    def asarray(
        self, x: Any, dtype: str | None = None, copy: bool = False
    ) -> np.ndarray:
        if not isinstance(x, np.ndarray) and hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        dt = None if dtype is None else _check_dtype(dtype)
        if copy:
            return np.array(x, dtype=dt, order="C", copy=True)
        return np.ascontiguousarray(x, dtype=dt)

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    def index(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx, dtype=np.intp)

    def zeros(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.zeros(shape, dtype=_check_dtype(dtype))

    def concat(self, arrays: list[np.ndarray], axis: int) -> np.ndarray:
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def _threads(shape: tuple[int, ...]) -> contextlib.AbstractContextManager[Any]:
        """One BLAS/LAPACK thread for small factorisations (needs threadpoolctl, else a no-op)."""
        if not _is_small_factorisation(shape):
            return contextlib.nullcontext()
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            return contextlib.nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    def svd(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import scipy.linalg

        # gesdd (divide & conquer) is what numpy/sklearn use and is the fastest LAPACK SVD.
        with self._threads(x.shape):
            return scipy.linalg.svd(
                x, full_matrices=False, lapack_driver="gesdd", check_finite=False
            )

    def eigh(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._threads(x.shape):
            return np.linalg.eigh(x)

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(a, b)

    def linear(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # BLAS takes the transposed operand as-is: no copy.
        return np.matmul(x, w.T)

    def linear_add(
        self, x: np.ndarray, w: np.ndarray, c: np.ndarray, beta: float = 1.0
    ) -> np.ndarray:
        out = np.matmul(x, w.T)
        if beta == 1.0:
            out += c
        elif beta == -1.0:
            out -= c
        else:
            raise ValueError(f"beta must be 1 or -1, got {beta}")
        return out

    def sumsq(self, x: np.ndarray, axis: int) -> np.ndarray:
        sub = "ij,ij->i" if axis in (1, -1) else "ij,ij->j"
        return np.einsum(sub, x, x)

    def square_(self, x: np.ndarray) -> np.ndarray:
        return np.multiply(x, x, out=x)

    def mean(self, x: np.ndarray, axis: int, dtype: str | None = None) -> np.ndarray:
        return np.mean(x, axis=axis, dtype=dtype)

    def sum(self, x: np.ndarray, axis: int) -> np.ndarray:
        return np.sum(x, axis=axis)

    def argmin(self, x: np.ndarray, axis: int) -> np.ndarray:
        return np.argmin(x, axis=axis)

    def argmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        return np.argmax(x, axis=axis)

    def nan_to_value(self, x: np.ndarray, value: float) -> np.ndarray:
        return np.where(np.isnan(x), value, x)

    def clip_min(self, x: np.ndarray, lo: float) -> np.ndarray:
        return np.maximum(x, lo)

    def sqrt(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt(x)

    def astype(self, x: np.ndarray, dtype: str) -> np.ndarray:
        return x.astype(_check_dtype(dtype), copy=False)

    def count_nonfinite(self, x: np.ndarray) -> int:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(x, dtype=np.float64)):
                return 0
        return int(x.size - np.count_nonzero(np.isfinite(x)))

    def dtype_of(self, x: np.ndarray) -> str:
        return np.dtype(x.dtype).name


class TorchBackend(Backend):
    """PyTorch implementation, on CPU or on one CUDA device."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = device
        self.name = "torch_cuda" if device.startswith("cuda") else "torch"
        self._dtypes = {"float32": torch.float32, "float64": torch.float64}
        self._onednn_linear: Any = None
        self._onednn = self.device == "cpu" and self._probe_onednn()

    def _probe_onednn(self) -> bool:
        """Whether to route CPU float32 GEMMs through oneDNN instead of MKL.

        Why: on CPUs where MKL falls back to a generic code path (e.g. AMD
        EPYC) or OpenBLAS is pinned to an older core type, oneDNN's JIT
        ``brgemm`` still uses AVX-512 and runs the ridge GEMMs ~1.5-2x faster,
        at full float32 precision.  The op used (``mkldnn::_linear_pointwise``,
        what ``torch.compile`` emits for CPU linears) is not public API, so it
        is probed once on a small problem and checked against
        ``torch.nn.functional.linear``; any failure silently keeps the
        portable path.  Set ``HARNESS_RIDGE_ONEDNN=0`` to disable it.
        """
        import os

        torch = self._torch
        if os.environ.get("HARNESS_RIDGE_ONEDNN", "1") == "0":
            return False
        try:
            if not torch.backends.mkldnn.is_available():
                return False
            op = torch.ops.mkldnn._linear_pointwise
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(37, 19, generator=gen)
            w = torch.randn(23, 19, generator=gen)
            got = op(x, w, None, "none", [], "")
            ok = got.shape == (37, 23) and bool(
                torch.allclose(
                    got, torch.nn.functional.linear(x, w), rtol=1e-4, atol=1e-4
                )
            )
        except Exception:  # pragma: no cover - any failure means "not usable"
            return False
        if ok:
            self._onednn_linear = op
        return ok

    def _tdtype(self, dtype: str | None) -> Any:
        return None if dtype is None else self._dtypes[_check_dtype(dtype)]

    def asarray(self, x: Any, dtype: str | None = None, copy: bool = False) -> Any:
        torch = self._torch
        if not isinstance(x, torch.Tensor):
            x = np.asarray(x)
            if x.dtype.kind not in "fiub":
                raise TypeError(f"cannot convert array of dtype {x.dtype} to a tensor")
            if copy or not x.flags.writeable or not x.flags.c_contiguous:
                # NumPy's strided/transposing copy is several times faster than
                # torch's for the (n, t) -> (c, n) chunk loads; do the one copy here.
                dt = None if dtype is None else _check_dtype(dtype)
                x = np.array(x, dtype=dt, order="C", copy=True)
                copy = False
            x = torch.from_numpy(x)
        tdtype = self._tdtype(dtype) or x.dtype
        if copy:
            # One copy, whatever the source strides/dtype/device.
            return torch.empty(tuple(x.shape), dtype=tdtype, device=self.device).copy_(
                x
            )
        return x.to(device=self.device, dtype=tdtype).contiguous()

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def index(self, idx: np.ndarray) -> Any:
        return self._torch.as_tensor(
            np.asarray(idx, dtype=np.int64), device=self.device
        )

    def zeros(self, shape: tuple[int, ...], dtype: str) -> Any:
        return self._torch.zeros(shape, dtype=self._tdtype(dtype), device=self.device)

    def concat(self, arrays: list[Any], axis: int) -> Any:
        return self._torch.cat(arrays, dim=axis)

    @contextlib.contextmanager
    def _threads(self, shape: tuple[int, ...]) -> Iterator[None]:
        """One intra-op thread (MKL included) for small CPU factorisations, then restore."""
        torch = self._torch
        if self.device != "cpu" or not _is_small_factorisation(shape):
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def svd(self, x: Any) -> tuple[Any, Any, Any]:
        with self._threads(tuple(x.shape)):
            return self._torch.linalg.svd(x, full_matrices=False)

    def eigh(self, x: Any) -> tuple[Any, Any]:
        with self._threads(tuple(x.shape)):
            return self._torch.linalg.eigh(x)

    def matmul(self, a: Any, b: Any) -> Any:
        return self._torch.matmul(a, b)

    def linear(self, x: Any, w: Any) -> Any:
        if self._onednn and x.dtype == self._torch.float32:
            try:
                return self._onednn_linear(
                    x.contiguous(), w.contiguous(), None, "none", [], ""
                )
            except RuntimeError:
                # oneDNN rejects some shapes ("could not create a primitive descriptor"):
                # the private op is an accelerator only, never a requirement
                self._onednn = False
        return self._torch.nn.functional.linear(x, w)

    def linear_add(self, x: Any, w: Any, c: Any, beta: float = 1.0) -> Any:
        if beta not in (1.0, -1.0):
            raise ValueError(f"beta must be 1 or -1, got {beta}")
        if self._onednn and x.dtype == self._torch.float32:
            attr = "add" if beta == 1.0 else "sub"
            try:
                return self._onednn_linear.binary(
                    x.contiguous(), c.contiguous(), w.contiguous(), None, attr
                )
            except RuntimeError:  # see linear(): fall back to the portable path
                self._onednn = False
        return self._torch.addmm(c, x, w.T, beta=beta)

    def sumsq(self, x: Any, axis: int) -> Any:
        return self._torch.linalg.vector_norm(x, dim=axis).square_()

    def square_(self, x: Any) -> Any:
        return x.square_()

    def mean(self, x: Any, axis: int, dtype: str | None = None) -> Any:
        return self._torch.mean(x, dim=axis, dtype=self._tdtype(dtype))

    def sum(self, x: Any, axis: int) -> Any:
        return self._torch.sum(x, dim=axis)

    def argmin(self, x: Any, axis: int) -> Any:
        return self._torch.argmin(x, dim=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return self._torch.argmax(x, dim=axis)

    def nan_to_value(self, x: Any, value: float) -> Any:
        return self._torch.nan_to_num(
            x, nan=value, posinf=float("inf"), neginf=float("-inf")
        )

    def clip_min(self, x: Any, lo: float) -> Any:
        return self._torch.clamp(x, min=lo)

    def sqrt(self, x: Any) -> Any:
        return self._torch.sqrt(x)

    def astype(self, x: Any, dtype: str) -> Any:
        return x.to(self._tdtype(dtype))

    def count_nonfinite(self, x: Any) -> int:
        torch = self._torch
        if bool(torch.isfinite(torch.sum(x, dtype=torch.float64))):
            return 0
        return int(x.numel() - int(torch.isfinite(x).sum()))

    def dtype_of(self, x: Any) -> str:
        return str(x.dtype).replace("torch.", "")

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize(self.device)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@functools.cache
def _make_backend(name: str) -> Backend:
    if name == "numpy":
        return NumpyBackend()
    if name == "torch":
        return TorchBackend("cpu")
    if name == "torch_cuda":
        if not _cuda_available():
            raise RuntimeError(
                "ridge backend 'torch_cuda' requested but CUDA is not available "
                "(torch.cuda.is_available() is False); use backend='torch', 'numpy' or 'auto'"
            )
        return TorchBackend("cuda")
    raise AssertionError(name)  # pragma: no cover - guarded by get_backend


def get_backend(name: str | Backend = "auto") -> Backend:
    """Return the backend called ``name``.

    ``"auto"`` picks ``"torch_cuda"`` when a GPU is visible, else ``"numpy"``.
    Why NumPy on CPU: the LOO fit is ~90 % float32 GEMMs, and the OpenBLAS that
    NumPy's wheel brings ran them at 92 GFLOP/s per core against 80 for torch's
    oneDNN path and 76 for its MKL (AMD EPYC, AVX2; ``benchmarks/bench_ridge.py``
    prints which BLAS ran); both backends give the same alphas and predictions
    (``tests/test_ridge.py``).  Passing a :class:`Backend` instance returns it unchanged so that
    callers can thread one object through without re-resolving names.
    Instances are cached: repeated calls are free.
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str) or name not in BACKEND_NAMES:
        raise ValueError(
            f"unknown ridge backend {name!r}; expected one of {BACKEND_NAMES}"
        )
    if name == "auto":
        name = "torch_cuda" if _cuda_available() else "numpy"
    return _make_backend(name)
