"""The two calibrated tests behind a drift verdict, in numpy only.

- :func:`share_test`: is the share of a window's inputs over the novelty threshold higher than the share of a
  held-out reference over the same threshold? One-sided Fisher exact test: the binomial test conditioned on the
  total count, so the reference's own sampling error is accounted for (testing against the nominal 5% over-alarms:
  the true in-distribution rate is 3.8-8.1% per set, see docs/drift.md).
- :func:`mmd_test`: maximum mean discrepancy with a Gaussian kernel (median-heuristic bandwidth) and a permutation
  p-value; the best calibrated of the two-sample tests measured (docs/drift.md).
"""

from __future__ import annotations

import math

import numpy as np

# One normalisation for the engine and drift: the engine's copes with rows whose float32 squares under- or
# overflow (components under ~1e-19 or over ~1e19), which a plain ``x / norm`` turns into tiny rows or zeros.
from chroma_core.engine.index import normalize as normalized

__all__ = ["mmd_test", "normalized", "share_test"]


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def share_test(hits: int, n: int, reference_hits: int, reference_n: int) -> float:
    """P(a window share at least ``hits / n``) when window and reference share one rate (one-sided Fisher)."""
    if n <= 0 or reference_n <= 0:
        raise ValueError("share_test needs inputs on both sides")
    total, pooled = hits + reference_hits, n + reference_n
    low, high = max(hits, total - reference_n), min(total, n)
    if low > high:
        return 1.0
    denominator = _log_choose(pooled, n)
    logs = [_log_choose(total, i) + _log_choose(pooled - total, n - i) - denominator for i in range(low, high + 1)]
    top = max(logs)
    return float(min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs)))


def _gaussian_kernel(z: np.ndarray) -> np.ndarray:
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    upper = d2[np.triu_indices(len(z), 1)]
    positive = upper[upper > 0]
    # The median heuristic: the kernel's width is the median distance between pooled points.
    bandwidth2 = float(np.median(positive)) if len(positive) else 1.0
    return np.exp(-d2 / bandwidth2)  # type: ignore[no-any-return]


def _mmd2(kernel: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Biased MMD² for each row of ``first`` (a boolean (p, N) membership of the first sample)."""
    a = first.astype(np.float64)
    b = 1.0 - a
    na, nb = a.sum(axis=1), b.sum(axis=1)
    ka = a @ kernel
    kaa = np.einsum("ij,ij->i", ka, a)
    kab = np.einsum("ij,ij->i", ka, b)
    kbb = np.einsum("ij,ij->i", b @ kernel, b)
    return kaa / na**2 + kbb / nb**2 - 2.0 * kab / (na * nb)  # type: ignore[no-any-return]


def mmd_test(
    x: np.ndarray, y: np.ndarray, *, permutations: int = 200, rng: np.random.Generator | None = None
) -> tuple[float, float]:
    """(MMD², permutation p-value) of samples ``x`` and ``y`` (rows are embeddings)."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd_test needs two inputs or more on each side")
    rng = rng if rng is not None else np.random.default_rng(0)
    z = np.concatenate([x, y]).astype(np.float64)
    kernel = _gaussian_kernel(z)
    observed = np.zeros((1, len(z)), dtype=bool)
    observed[0, : len(x)] = True
    stat = float(_mmd2(kernel, observed)[0])
    shuffled = np.zeros((permutations, len(z)), dtype=bool)
    for i in range(permutations):
        shuffled[i, rng.permutation(len(z))[: len(x)]] = True
    null = np.empty(permutations)
    for start in range(0, permutations, 50):  # in slices: a (p, N) @ (N, N) product per slice stays small
        null[start : start + 50] = _mmd2(kernel, shuffled[start : start + 50])
    p_value = (1.0 + float(np.sum(null >= stat - 1e-12))) / (1.0 + permutations)
    return max(stat, 0.0), p_value
