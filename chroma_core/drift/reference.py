"""A held-out reference drawn from a set's training data: what in-distribution inputs look like to the scorer.

Up to :data:`REFERENCE_SIZE` training rows are drawn at random and split into :data:`FOLDS` folds; each row's
novelty (from its nearest training inputs, by the same ``novelty_score`` the scorer applies to a query: the raw
kinds through :func:`chroma_core.engine.scoring.novelty_of`, the centred ones through
:class:`chroma_core.engine.centred.CentredNovelty` on as many raw candidates as a query gets, with the training
labels, or predicted labels, for ``knn_class_centred``) is measured against the training set *without its own
fold* (cross-fitting), so a reference row is scored as a new input would be, and no row is scored against itself
or against its fold's near copies. The reference's share over a
novelty threshold is then the rate that in-distribution inputs really show, rather than the nominal percentile.

Which score the stored answers were given with is not stored with them. The threshold a window's answers carry is
matched with the calibrations the set keeps (one per score kind the set was queried with, at the default
percentile): a window answered under ``knn_mean`` before the default became ``knn_class_centred`` is compared with
a ``knn_mean`` reference (:class:`References`). A threshold that matches no calibration (overridden, another
percentile, a calibration since replaced) is taken to be of the default kind.

The result is kept in the store's per-set state for the set's revision and training size, so it is computed
once per training set (it reads every training vector once: about a second per 100k rows of dimension 384).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import numpy as np

from chroma_core.drift.stats import normalized
from chroma_core.engine.centred import CENTRED, CentredNovelty, candidates_for, label_codes
from chroma_core.engine.scoring import calibration_key, novelty_of
from chroma_core.types import DEFAULT_THRESHOLDS, Thresholds
from chroma_core.types.thresholds import NOVELTY_SCORES

__all__ = ["FOLDS", "REFERENCE_SIZE", "Reference", "References", "reference_of"]

REFERENCE_SIZE = 1000
FOLDS = 5
#: Fewer training rows than this and no reference can be held out while leaving a training set to compare with.
MIN_TRAINING = 50
_CHUNK = 16384


class _Reads(Protocol):
    """What the reference needs of a store (a part of :class:`chroma_core.engine.store.Store`)."""

    def vectors(self, set_id: str, mode: Any, start: int = 0, stop: int | None = None) -> np.ndarray: ...
    def vectors_at(self, set_id: str, mode: Any, rows: Any) -> np.ndarray: ...
    def records(self, set_id: str, mode: Any, start: int = 0, stop: int | None = None) -> list[Any]: ...
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


def _nearest_outside_fold(
    store: _Reads, set_id: str, n_training: int, rows: np.ndarray, queries: np.ndarray, wanted: int
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and rows of each reference row's ``wanted`` nearest training rows outside its own fold, most
    similar first (as the scorer's search returns a query's neighbours)."""
    fold = np.arange(len(rows)) % FOLDS
    best = np.full((len(rows), wanted), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(rows), wanted), dtype=np.int64)
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
        merged_rows = np.concatenate([best_rows, np.broadcast_to(np.arange(start, stop), sims.shape)], axis=1)
        keep = np.argpartition(-merged, wanted - 1, axis=1)[:, :wanted]
        best = np.take_along_axis(merged, keep, axis=1)
        best_rows = np.take_along_axis(merged_rows, keep, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1), np.take_along_axis(best_rows, order, axis=1)


def _training_labels(store: _Reads, set_id: str, n_training: int) -> np.ndarray | None:
    """A code per training row for its label (else its predicted label; -1: neither), as the scorer conditions
    ``knn_class_centred`` on; None when no row has one (the score is then the plain centred one)."""
    labels: list[Any] = []
    inferences: list[Any] = []
    for start in range(0, n_training, _CHUNK):
        for record in store.records(set_id, "training", start, min(n_training, start + _CHUNK)):
            labels.append(record.label)
            inferences.append(record.inferences)
    codes = label_codes(labels, inferences)
    return codes if (codes >= 0).any() else None


def _cross_fitted_novelty(
    store: _Reads, set_id: str, n_training: int, rows: np.ndarray, queries: np.ndarray, k: int, kind: str
) -> np.ndarray:
    available = n_training - -(-len(rows) // FOLDS)  # the rows outside the largest fold, at the least
    labels = _training_labels(store, set_id, n_training) if kind == "knn_class_centred" else None
    # As many candidates as the scorer takes (SetModel._wanted): per label only when the set has labels.
    wanted = max(k, candidates_for(k, available, per_label=labels is not None)) if kind in CENTRED else k
    sims, near = _nearest_outside_fold(store, set_id, n_training, rows, queries, min(wanted, available))
    if kind not in CENTRED:
        return novelty_of(sims, k, kind)
    # The mean of the whole training set, as the scorer's: a fold's share of it is a twentieth at most.
    centred = CentredNovelty(lambda r: normalized(store.vectors_at(set_id, "training", r)), n_training)
    return centred.novelty(queries, sims, near, k, labels)


def reference_of(
    store: _Reads,
    set_id: str,
    n_training: int,
    revision: int,
    *,
    k: int = 10,
    novelty_score: str = DEFAULT_THRESHOLDS.novelty_score,
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


class References:
    """A set's reference for each novelty score its stored answers were given with (module docstring).

    ``default`` is the reference of the default score; the others are computed when a window needs them.
    """

    def __init__(self, store: _Reads, set_id: str, n_training: int, revision: int, default: Reference) -> None:
        self.default = default
        self._args = (store, set_id, n_training, revision)
        self._defaults = Thresholds()
        self._by_kind: dict[str, Reference | None] = {self._defaults.novelty_score: default}
        self._calibrated: dict[str, float] | None = None

    def _calibrations(self) -> dict[str, float]:
        if self._calibrated is None:
            store, set_id, n_training = self._args[:3]
            k = min(self._defaults.k, n_training - 1)  # as the scorer keys its calibration
            self._calibrated = {}
            for kind in NOVELTY_SCORES:
                kept = store.read_state(set_id, calibration_key(Thresholds(novelty_score=kind), k))
                if kept is not None and isinstance(kept.get("novelty"), (int, float)):
                    self._calibrated[kind] = float(kept["novelty"])
        return self._calibrated

    def kind_of(self, threshold: float) -> str:
        """The score kind whose calibrated novelty threshold is ``threshold`` (the default kind when none is)."""
        for kind, value in self._calibrations().items():
            if math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12):
                return kind
        return self._defaults.novelty_score

    def for_threshold(self, threshold: float) -> Reference:
        """The reference scored as the answers with novelty threshold ``threshold`` were."""
        kind = self.kind_of(threshold)
        if kind not in self._by_kind:
            self._by_kind[kind] = reference_of(*self._args, k=self._defaults.k, novelty_score=kind)
        return self._by_kind[kind] or self.default
