"""Spherical k-means (k-means++ seeding, Lloyd iterations on unit vectors), numpy only.

Used to say *where* a set drifted: clusters fitted on training and production inputs together, so a new region
of production gets clusters of its own rather than being spread over the training clusters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign", "kmeans"]


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (by cosine) of each unit row of ``x``."""
    if not len(x):
        return np.empty(0, dtype=np.int64)
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), 8192):
        out[start : start + 8192] = np.argmax(x[start : start + 8192] @ centroids.T, axis=1)
    return out


def _seed(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [x[rng.integers(len(x))]]
    distance = 1.0 - x @ centroids[0]
    for _ in range(1, k):
        weights = np.maximum(distance, 0.0) ** 2
        total = float(weights.sum())
        pick = rng.choice(len(x), p=weights / total) if total > 0 else int(rng.integers(len(x)))
        centroids.append(x[pick])
        distance = np.minimum(distance, 1.0 - x @ x[pick])
    return np.stack(centroids)


def kmeans(
    x: np.ndarray, k: int, *, rng: np.random.Generator | None = None, iterations: int = 25
) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k', d), labels (n,)) for unit rows ``x``; ``k'`` is ``k`` at most (never more than ``len(x)``)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    k = max(1, min(k, len(x)))
    centroids = _seed(x, k, rng)
    labels = assign(x, centroids)
    for _ in range(iterations):
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        centroids = np.where(empty[:, None], centroids, sums / np.where(norms > 0, norms, 1.0))
        new = assign(x, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
    return centroids.astype(np.float32), labels
