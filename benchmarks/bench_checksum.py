"""Which checksum for the token cache: xxh3 (xxhash) against hashlib's blake2b and sha256, in one run.

The token cache checksums every file while writing it and re-reads whole entries on ``harness cache
verify``; what matters is throughput over large contiguous buffers (a layer's rows arrive in blocks of
one batch). Each function hashes the same in-memory buffer in 8 MiB blocks (how
``harness.cache_integrity.file_checksum`` reads), best of ``--repeat`` runs, and prints GB/s and the
ratio against blake2b (the baseline: the fastest cryptographic hash in the standard library).

Usage::

    python benchmarks/bench_checksum.py            # 512 MiB buffer
    python benchmarks/bench_checksum.py --mib 64   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xxhash

CHUNK = 8 << 20


def throughput(make: Callable[[], Any], buf: memoryview, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        h = make()
        for i in range(0, len(buf), CHUNK):
            h.update(buf[i:i + CHUNK])
        h.hexdigest()
        best = min(best, time.perf_counter() - t0)
    return len(buf) / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    buf = memoryview(np.random.default_rng(0).integers(0, 256, a.mib << 20, dtype=np.uint8).tobytes())
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"xxhash {xxhash.VERSION}, {a.mib} MiB, best of {a.repeat}")
    funcs: dict[str, Callable[[], Any]] = {
        "blake2b-128 (baseline)": lambda: hashlib.blake2b(digest_size=16),
        "sha256": hashlib.sha256,
        "xxh64": xxhash.xxh64,
        "xxh3_128 (cache)": xxhash.xxh3_128,
    }
    base = None
    for name, make in funcs.items():
        gbs = throughput(make, buf, a.repeat)
        base = base or gbs
        print(f"{name:24s} {gbs:7.2f} GB/s  {gbs / base:6.1f}x blake2b")


if __name__ == "__main__":
    main()
