"""The terms ``select`` weighs besides priority and diversity: typicality and class balance.

Lightly's selection strategies are the reference (a weighted sum of per-sample terms, greedy): each term here is
a number per candidate that the greedy loop of :func:`chroma_core.engine.selection.spread` combines with weights.

- **Typicality** (Hacohen et al. 2022, *TypiClust*: typicality is the inverse of the mean distance to the nearest
  neighbours): a candidate's *local density* is its mean cosine similarity to its :data:`DENSITY_K` nearest fellow
  candidates, divided by the largest in the pool. With weight ``t`` a candidate's relevance is
  ``priority * (1 - t + t * density)``: a dense region of novel inputs comes before a lone outlier of the same
  priority, because labelling one of many similar failures fixes many.
- **Class balance** over the candidates' classes (their predicted label, else the label of their nearest training
  input): with weight ``b``, a candidate whose class already holds more than an equal share of the picks loses
  ``b / (1 - b)`` times the excess share; ``b = 1`` is strict round-robin (every class before any repeats). When
  no candidate has a class (no predicted labels, no labelled training), the classes are clusters of the candidates
  themselves (spherical k-means, ``sqrt(candidates)`` of them, at most the picks; :func:`cluster_codes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_core.engine.inferences import predicted_label
from chroma_core.engine.store import StoredRecord
from chroma_core.types import QueryResult

__all__ = [
    "DENSITY_K",
    "DENSITY_SAMPLE",
    "balance_penalty",
    "class_codes",
    "class_of",
    "cluster_codes",
    "density",
    "typical",
]

#: Neighbours a candidate's density is the mean similarity to (TypiClust's K is 20 on images of 50k; the pools
#: here are often a few hundred inputs, where 10 still spans a region rather than a pair of copies).
DENSITY_K = 10
#: Candidates the density is measured against: a fixed-seed sample keeps its cost at pool x sample x dimension.
DENSITY_SAMPLE = 4096


def density(unit: np.ndarray, *, k: int = DENSITY_K, sample: int = DENSITY_SAMPLE) -> np.ndarray:
    """Each unit row's mean cosine similarity to its ``k`` nearest other rows (of a sample), scaled to [0, 1]."""
    m = len(unit)
    if m < 2:
        return np.ones(m)
    reference = np.arange(m) if m <= sample else np.sort(np.random.default_rng(0).choice(m, sample, replace=False))
    kk = min(k, len(reference) - 1)
    out = np.empty(m)
    for start in range(0, m, 1024):
        rows = np.arange(start, min(start + 1024, m))
        sims = unit[rows] @ unit[reference].T
        # A row never counts as its own neighbour.
        same = rows[:, None] == reference[None, :]
        sims[same] = -np.inf
        top = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
        out[rows] = top.mean(axis=1)
    out = np.maximum(out, 0.0)
    peak = out.max()
    return out / peak if peak > 0 else np.ones(m)  # type: ignore[no-any-return]


def typical(relevance: np.ndarray, local_density: np.ndarray, weight: float) -> np.ndarray:
    """Relevance weighed towards dense regions: ``relevance * (1 - weight + weight * density)``."""
    return np.asarray(relevance, dtype=np.float64) * (1.0 - weight + weight * local_density)  # type: ignore[no-any-return]


def class_of(record: StoredRecord, result: QueryResult | None) -> Any:
    """A candidate's class: its predicted label, else its nearest training input's label, else None."""
    label = predicted_label(record.inferences)
    if label is None and result is not None and result.nearest:
        label = result.nearest[0].label
    return label


def class_codes(labels: Sequence[Any]) -> np.ndarray:
    """Small integer codes of ``labels`` (by first appearance); all candidates without a class share one code."""
    codes: dict[str, int] = {}
    # Labels may be any JSON value; their repr is a key that tells 1 and "1" apart.
    return np.array([codes.setdefault(repr(label), len(codes)) for label in labels], dtype=np.int64)


def cluster_codes(unit: np.ndarray, picks: int) -> np.ndarray:
    """Classes for candidates that carry none: spherical k-means of the unit rows, ``sqrt(len(unit))`` clusters
    (at least 2, at most ``picks``), fixed seed (the same candidates give the same clusters)."""
    # Imported here: the drift package imports the engine's scoring, the engine imports nothing of drift at load.
    from chroma_core.drift.kmeans import kmeans

    k = max(2, min(picks, int(np.sqrt(len(unit)))))
    return kmeans(unit, k, rng=np.random.default_rng(0))[1].astype(np.int64)


def balance_penalty(classes: np.ndarray, alive: np.ndarray, counts: np.ndarray, weight: float) -> np.ndarray:
    """What each candidate loses because its class already has more than its fair share of the picks.

    The fair share is an equal part for each class that still has candidates; a class over it by ``s`` (a share
    of the picks so far, so at most 1) costs ``s * weight / (1 - weight)``. ``weight = 1`` excludes (minus
    infinity) every class picked more often than the least-picked one: strict round-robin.
    """
    live = np.unique(classes[alive])
    floor = counts[live].min() if len(live) else 0
    if weight >= 1.0:
        return np.where(counts[classes] > floor, np.inf, 0.0)  # type: ignore[no-any-return]
    picked = max(1, int(counts.sum()))
    over = np.maximum(counts[classes] / picked - 1.0 / max(1, len(live)), 0.0)
    return over * (weight / (1.0 - weight))  # type: ignore[no-any-return]
