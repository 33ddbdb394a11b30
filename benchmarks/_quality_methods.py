"""The published out-of-distribution detectors the engine's default is compared with, and the metrics.

Every detector is ``fit(train, labels) -> score(queries)`` over unit vectors, higher meaning "more novel":

- kNN k-th and mean cosine distance (Sun et al. 2022, "Out-of-distribution detection with deep nearest neighbors").
- Class-conditional Mahalanobis with a tied, Ledoit-Wolf-shrunk covariance (Lee et al. 2018).
- Relative Mahalanobis: class-conditional minus a single background Gaussian (Ren et al. 2021).
- SSD: Mahalanobis to k-means clusters, no labels needed (Sehwag et al. 2021).
- The classifier's own uncertainty, from a softmax probe fitted on the training labels (the model a team serves
  would give these scores in its inferences): maximum softmax probability (Hendrycks & Gimpel 2017) and the
  energy score (Liu et al. 2020).
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


# ---- issue 15, the TPR target: more detectors, each calibrated on training alone ----------------------------------
# ``LooDetector``s return the score function and the training rows' own leave-one-out scores (the calibration set),
# as the engine calibrates kNN; the others are fitted detectors, calibrated by cross-fitting.
LooDetector = Callable[[np.ndarray, np.ndarray], tuple[Score, np.ndarray]]


def _knn_mean(queries: np.ndarray, train: np.ndarray, k: int, *, loo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mean cosine distance to the k nearest, their rows) of each query."""
    sims = queries @ train.T
    if loo:
        np.fill_diagonal(sims, -np.inf)
    kk = min(k, train.shape[0] - int(loo))
    rows = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
    return 1 - np.take_along_axis(sims, rows, 1).mean(1), rows


def lof_knn(k: int = 10) -> LooDetector:
    """kNN mean distance divided by the mean of the neighbours' own kNN mean distance (LOF-style, Breunig 2000):
    a query in a sparse part of training is judged against how sparse that part is."""

    def fit(train: np.ndarray, labels: np.ndarray) -> tuple[Score, np.ndarray]:
        own, rows = _knn_mean(train, train, k, loo=True)
        reach = np.maximum(own, 1e-6)

        def score(queries: np.ndarray) -> np.ndarray:
            d, nn = _knn_mean(queries, train, k)
            return d / reach[nn].mean(1)  # type: ignore[no-any-return]

        return score, own / reach[rows].mean(1)

    return fit


def grouped_knn(groups_of: Callable[[np.ndarray, np.ndarray], np.ndarray], k: int = 10) -> LooDetector:
    """Min over groups (classes or clusters) of the mean distance to the k nearest of that group."""

    def fit(train: np.ndarray, labels: np.ndarray) -> tuple[Score, np.ndarray]:
        groups = groups_of(train, labels)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]

        def per_group(queries: np.ndarray, self_rows: np.ndarray | None) -> np.ndarray:
            out = np.full(len(queries), np.inf)
            for rows in members:
                sims = queries @ train[rows].T
                if self_rows is not None:  # leave each training row out of its own group
                    sims[self_rows[:, None] == rows[None, :]] = -np.inf
                kk = min(k, len(rows) - (self_rows is not None))
                if kk < 1:
                    continue
                top = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
                out = np.minimum(out, 1 - top.mean(1))
            return out

        return (lambda q: per_group(q, None)), per_group(train, np.arange(len(train)))

    return fit


def pca_residual(dims: int) -> Detector:
    """Distance of a query from the span of training's top ``dims`` principal components (its reconstruction error)."""

    def fit(train: np.ndarray, labels: np.ndarray) -> Score:
        mu = train.mean(0)
        _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
        basis = vt[:dims]

        def score(queries: np.ndarray) -> np.ndarray:
            c = queries - mu
            return np.linalg.norm(c - (c @ basis.T) @ basis, axis=1)  # type: ignore[no-any-return]

        return score

    return fit


def pca_mahalanobis(dims: int) -> Detector:
    """Mahalanobis distance to training's mean in its top ``dims`` principal components (whitened)."""

    def fit(train: np.ndarray, labels: np.ndarray) -> Score:
        mu = train.mean(0)
        _, s, vt = np.linalg.svd(train - mu, full_matrices=False)
        var = s[:dims] ** 2 / len(train)

        def score(queries: np.ndarray) -> np.ndarray:
            z = (queries - mu) @ vt[:dims].T
            return (z**2 / var).sum(1)  # type: ignore[no-any-return]

        return score

    return fit


def softmax_probe(kind: str, l2: float = 1e-3, steps: int = 400, rate: float = 2.0) -> Detector:
    """A multinomial logistic regression on the training labels (L2, full-batch gradient descent with momentum,
    deterministic), scored by ``kind``: ``"msp"`` (1 - max probability) or ``"energy"`` (-logsumexp of logits)."""

    def fit(train: np.ndarray, labels: np.ndarray) -> Score:
        names, y = np.unique(labels, return_inverse=True)
        onehot = np.eye(len(names))[y]
        w = np.zeros((train.shape[1], len(names)))
        b = np.zeros(len(names))
        vw, vb = np.zeros_like(w), np.zeros_like(b)
        for _ in range(steps):
            z = train @ w + b
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            g = (p - onehot) / len(train)
            vw = 0.9 * vw - rate * (train.T @ g + l2 * w)
            vb = 0.9 * vb - rate * g.sum(0)
            w, b = w + vw, b + vb

        def score(queries: np.ndarray) -> np.ndarray:
            z = queries @ w + b
            top = z.max(1)
            lse = top + np.log(np.exp(z - top[:, None]).sum(1))
            if kind == "energy":
                return -lse  # type: ignore[no-any-return]
            return 1 - np.exp(top - lse)  # type: ignore[no-any-return]

        return score

    return fit


def oracle_probe(train: np.ndarray, ood_train: np.ndarray) -> Score:
    """NOT a detector: a shrunk linear discriminant (Fisher) fitted on training *and held-out-category* inputs.

    It sees the novelty it is asked about, so it bounds how far MiniLM separates the held-out category at all
    with a linear read-out."""
    mu0, mu1 = train.mean(0), ood_train.mean(0)
    cov = shrunk_covariance(np.concatenate([train - mu0, ood_train - mu1]))
    w = np.linalg.solve(cov, mu1 - mu0)
    return lambda q: q @ w  # type: ignore[no-any-return]


def centred(detector: LooDetector) -> LooDetector:
    """``detector`` on vectors from which training's mean was removed (then re-normalised), as the engine's
    ``knn_centred`` novelty does for the plain kNN mean."""

    def fit(train: np.ndarray, labels: np.ndarray) -> tuple[Score, np.ndarray]:
        mu = train.mean(0)

        def shift(q: np.ndarray) -> np.ndarray:
            c = q - mu
            return c / np.linalg.norm(c, axis=1, keepdims=True)  # type: ignore[no-any-return]

        score, reference = detector(shift(train), labels)
        return (lambda q: score(shift(q))), reference

    return fit
