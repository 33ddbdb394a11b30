"""A held-out reference drawn from a set's training data: what in-distribution inputs look like to the scorer.

Up to :data:`REFERENCE_SIZE` training rows are drawn at random and split into :data:`FOLDS` folds; each row's
novelty (from its k nearest training inputs, by the same ``novelty_score`` and function the scorer applies to a
query: :func:`chroma_core.engine.scoring.novelty_of`) is measured
against the training set *without its own fold* (cross-fitting), so a reference row is scored as a new input
would be, and no row is scored against itself or against its fold's near copies. The reference's share over a
novelty threshold is then the rate that in-distribution inputs really show, rather than the nominal percentile.

The result is kept in the store's per-set state for the set's revision and training size, so it is computed
once per training set (it reads every training vector once: about a second per 100k rows of dimension 384).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np

from chroma_core.drift.stats import normalized
from chroma_core.engine.scoring import novelty_of

__all__ = ["FOLDS", "REFERENCE_SIZE", "Reference", "reference_of"]

REFERENCE_SIZE = 1000
FOLDS = 5
#: Fewer training rows than this and no reference can be held out while leaving a training set to compare with.
MIN_TRAINING = 50
_CHUNK = 16384


class _Reads(Protocol):
    """What the reference needs of a store (a part of :class:`chroma_core.engine.store.Store`)."""

    def vectors(self, set_id: str, mode: Any, start: int = 0, stop: int | None = None) -> np.ndarray: ...
    def vectors_at(self, set_id: str, mode: Any, rows: Any) -> np.ndarray: ...
    def read_state(self, set_id: str, key: str) -> dict[str, Any] | None: ...
    def write_state(self, set_id: str, key: str, value: dict[str, Any]) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Reference:
    """Training rows held out (``rows``), their cross-fitted novelty (``novelty``) and unit vectors."""

    rows: np.ndarray
    novelty: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def share_over(self, threshold: float) -> tuple[int, int]:
        """(how many reference rows score over ``threshold``, how many rows)."""
        return int(np.sum(self.novelty > threshold)), len(self.rows)


def _size(n_training: int) -> int:
    return min(REFERENCE_SIZE, n_training // 4) if n_training >= MIN_TRAINING else 0


def _cross_fitted_novelty(
    store: _Reads, set_id: str, n_training: int, rows: np.ndarray, queries: np.ndarray, k: int, kind: str
) -> np.ndarray:
    fold = np.arange(len(rows)) % FOLDS
    best = np.full((len(rows), k), -np.inf, dtype=np.float32)
    for start in range(0, n_training, _CHUNK):
        stop = min(n_training, start + _CHUNK)
        sims = queries @ normalized(store.vectors(set_id, "training", start, stop)).T
        # A reference row is never compared with a row of its own fold (itself included).
        inside = (rows >= start) & (rows < stop)
        for f in range(FOLDS):
            columns = rows[inside & (fold == f)] - start
            if len(columns):
                sims[np.ix_(fold == f, columns)] = -np.inf
        merged = np.concatenate([best, sims], axis=1)
        best = -np.partition(-merged, k - 1, axis=1)[:, :k]
    # The k most similar, most similar first, as the scorer sees a query's neighbours.
    return novelty_of(-np.sort(-best, axis=1), k, kind)


def reference_of(
    store: _Reads, set_id: str, n_training: int, revision: int, *, k: int = 10, novelty_score: str = "knn_mean"
) -> Reference | None:
    """The set's held-out reference (None when training is too small to hold one out), its novelty scored with
    ``k`` neighbours by ``novelty_score`` (:class:`~chroma_core.types.Thresholds`' own, as the answers were)."""
    size = _size(n_training)
    if size < 2:
        return None
    # v1 measured the k-th neighbour's distance whatever the scorer used: recomputed, never reused.
    key = f"drift/reference/v2/{novelty_score}/{k}/{size}"
    kept = store.read_state(set_id, key)
    if kept is not None and (kept.get("revision"), kept.get("n_training")) == (revision, n_training):
        rows = np.asarray(kept["rows"], dtype=np.int64)
        novelty = np.asarray(kept["novelty"], dtype=np.float64)
    else:
        rng = np.random.default_rng(n_training)
        rows = np.sort(rng.choice(n_training, size=size, replace=False)).astype(np.int64)
        queries = normalized(store.vectors_at(set_id, "training", rows))
        # The other rows still number at least k: a fold is a fifth of a quarter of training at most.
        novelty = _cross_fitted_novelty(
            store, set_id, n_training, rows, queries, min(k, n_training - size), novelty_score
        )
        store.write_state(
            set_id,
            key,
            {"revision": revision, "n_training": n_training, "rows": rows.tolist(), "novelty": novelty.tolist()},
        )
        return Reference(rows, novelty, queries)
    return Reference(rows, novelty, normalized(store.vectors_at(set_id, "training", rows)))
