"""Timing helpers: medians of repeated runs, each figure beside a baseline measured in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def per_call(fn: Callable[[], object], *, inner: int = 1000, repeats: int = 50) -> float:
    """Median seconds per call over ``repeats`` timed loops of ``inner`` calls (loop overhead included)."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` runs of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
