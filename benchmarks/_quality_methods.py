"""The published out-of-distribution detectors the engine's default is compared with, and the metrics.

Every detector is ``fit(train, labels) -> score(queries)`` over unit vectors, higher meaning "more novel":

- kNN k-th and mean cosine distance (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors").
- Class-conditional Mahalanobis with a tied, Ledoit-Wolf-shrunk covariance (Lee et al. 2018).
- Relative Mahalanobis: class-conditional minus a single background Gaussian (Ren et al. 2021).
- SSD: Mahalanobis to k-means clusters, no labels needed (Sehwag et al. 2021).
- Calibrated combinations: each score turned into its percentile among the training set's own cross-fitted
  (out-of-fold) scores, then the mean or the max.

Calibration uses the training data alone: leave-one-out for kNN, 5-fold cross-fitting for the fitted detectors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Score = Callable[[np.ndarray], np.ndarray]
Detector = Callable[[np.ndarray, np.ndarray], Score]


def shrunk_covariance(centred: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrinkage of the sample covariance towards a scaled identity (Ledoit & Wolf 2004)."""
    n, d = centred.shape
    s = centred.T @ centred / n
    mu = np.trace(s) / d
    target = mu * np.eye(d)
    d2 = ((s - target) ** 2).sum() / d
    sq = centred**2
    b2 = min(d2, ((sq.T @ sq / n - s**2).sum() / n) / d)
    a = b2 / d2 if d2 > 0 else 1.0
    return (1 - a) * s + a * target  # type: ignore[no-any-return]


def mahalanobis(groups_of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Detector:
    """Min Mahalanobis distance to the group means, one tied covariance; ``groups_of(train, labels)`` names groups."""

    def fit(train: np.ndarray, labels: np.ndarray) -> Score:
        groups = groups_of(train, labels)
        names = np.unique(groups)
        means = np.stack([train[groups == g].mean(0) for g in names])
        cov = shrunk_covariance(train - means[np.searchsorted(names, groups)])
        w, v = np.linalg.eigh(cov)
        whiten = v / np.sqrt(np.maximum(w, w.max() * 1e-6))
        centres = means @ whiten

        def score(queries: np.ndarray) -> np.ndarray:
            z = queries @ whiten
            d = (z**2).sum(1)[:, None] - 2 * z @ centres.T + (centres**2).sum(1)[None]
            return d.min(axis=1)  # type: ignore[no-any-return]

        return score

    return fit


def kmeans(train: np.ndarray, k: int, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """Spherical k-means (k-means++ start) cluster of each row."""
    rng = np.random.default_rng(seed)
    centres = train[rng.choice(len(train), 1)]
    for _ in range(k - 1):
        d = np.maximum(1 - (train @ centres.T).max(1), 0)
        p = d / d.sum() if d.sum() > 0 else None
        centres = np.vstack([centres, train[rng.choice(len(train), p=p)]])
    for _ in range(iterations):
        assign = (train @ centres.T).argmax(1)
        centres = np.stack([train[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return (train @ centres.T).argmax(1)  # type: ignore[no-any-return]


def clusters_for(n: int) -> int:
    """SSD's cluster count: sqrt(n / 2), the usual rule of thumb."""
    return max(2, round(float(np.sqrt(n / 2))))


class_maha = mahalanobis(lambda x, labels: labels)
ssd = mahalanobis(lambda x, labels: kmeans(x, clusters_for(len(x))))
_background = mahalanobis(lambda x, labels: np.zeros(len(x), dtype=np.int64))


def relative_maha(train: np.ndarray, labels: np.ndarray) -> Score:
    cls, bg = class_maha(train, labels), _background(train, labels)
    return lambda q: cls(q) - bg(q)


def knn_distances(queries: np.ndarray, train: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    sims = queries @ train.T
    if leave_one_out:
        np.fill_diagonal(sims, -np.inf)
    return 1 - -np.sort(-sims, axis=1)[:, :k]  # type: ignore[no-any-return]


def cross_fitted(detector: Detector, train: np.ndarray, labels: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each training row's score from a detector fitted on the other folds (out-of-fold calibration scores)."""
    fold = np.random.default_rng(0).permutation(len(train)) % folds
    out = np.empty(len(train))
    for f in range(folds):
        rest = fold != f
        out[~rest] = detector(train[rest], labels[rest])(train[~rest])
    return out


def percentile_of(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Share of ``reference`` at or below each score (its training percentile, in [0, 1])."""
    return np.searchsorted(np.sort(reference), scores, side="right") / len(reference)  # type: ignore[no-any-return]


def auroc(ood: np.ndarray, ind: np.ndarray) -> float:
    """P(an OOD score > an in-distribution one), ties counted half (Mann-Whitney U)."""
    scores = np.concatenate([ood, ind])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]  # average ranks of ties
    u = ranks[: len(ood)].sum() - len(ood) * (len(ood) + 1) / 2
    return float(u / (len(ood) * len(ind)))


def fpr_at_95_tpr(ood: np.ndarray, ind: np.ndarray) -> float:
    return float(np.mean(ind >= np.percentile(ood, 5)))
