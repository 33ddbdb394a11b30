"""Which production inputs to label next: rank the recommended ones, spread the picks, drop near duplicates.

A hundred picks should not be a hundred copies of one failure. :func:`spread` is maximal marginal relevance
(Carbonell & Goldstein, 1998) over unit vectors: each step takes the candidate that maximises
``(1 - diversity) * relevance - diversity * (cosine similarity to the closest pick so far)``; ``diversity=1`` is
farthest-point selection, ``diversity=0`` is plain priority order. A candidate within the near-duplicate distance
of a pick is dropped, whatever its priority.

Relevance is a candidate's *priority*: by how much its strongest signal exceeds its threshold, i.e. the largest of
``score / threshold`` over novelty, uncertainty and label disagreement, weighed by local density when
``typicality`` is above 0, divided by the largest in the pool. With ``balance`` above 0, a candidate whose class
already has more than its share of the picks loses score (:mod:`chroma_core.engine.strategies`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from chroma_core.engine.answers import SCORES, THRESHOLDS, Answers
from chroma_core.engine.index import normalize
from chroma_core.engine.store import Store
from chroma_core.engine.strategies import balance_penalty, class_codes, class_of, cluster_codes, density, typical
from chroma_core.errors import NoProductionDataError, UnknownEmbeddingSetError
from chroma_core.types import Pick, QueryRequest, QueryResult, Selection, SelectRequest

__all__ = ["pool", "priorities", "priority", "select", "spread"]

#: The signals that make an input worth labelling, each with the threshold it is compared with.
_SIGNALS = ("novelty", "uncertainty", "label_disagreement")
#: Candidates kept for spreading, by priority: MMR costs picks x pool x dimension, and an input that far down the
#: priority order is not picked anyway unless the pool is all one failure, which the cap still covers.
POOL_PER_PICK, POOL_MIN = 50, 20_000


def _priorities(scores: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Row-wise max of ``score / threshold`` over the signals; 0 where none has both a score and a positive limit."""
    usable = np.isfinite(scores) & np.isfinite(limits) & (limits > 0)
    ratios = np.where(usable, scores / np.where(usable, limits, 1.0), 0.0)
    return np.maximum(ratios.max(axis=1, initial=0.0), 0.0)  # type: ignore[no-any-return]


def priorities(answers: Answers) -> np.ndarray:
    """How far the strongest signal of each answer exceeds its threshold (``score / threshold``), as float64."""
    columns = [SCORES.index(name) for name in _SIGNALS]
    limits = [THRESHOLDS.index(name) for name in _SIGNALS]
    return _priorities(answers.scores[:, columns], answers.thresholds[:, limits])


def priority(result: Mapping[str, Any]) -> float:
    """:func:`priorities` of one answer given as a dict (``QueryResult.to_dict()``)."""
    scores = result.get("scores") or {}
    thresholds = result.get("thresholds") or {}

    def number(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan

    row = np.array([[number(scores.get(name)) for name in _SIGNALS]])
    limit = np.array([[number(thresholds.get(name)) for name in _SIGNALS]])
    return float(_priorities(row, limit)[0])


def spread(
    vectors: np.ndarray,
    relevance: np.ndarray,
    n: int,
    *,
    diversity: float,
    duplicate_distance: float,
    typicality: float = 0.0,
    classes: np.ndarray | None = None,
    balance: float = 0.0,
) -> tuple[list[int], list[float | None], int]:
    """Maximal marginal relevance over the rows of ``vectors`` (see the module docstring), with the typicality and
    class-balance terms of :mod:`chroma_core.engine.strategies` when their weights are above 0.

    Returns the chosen row indexes in pick order, each pick's similarity to the closest earlier pick, and how many
    candidates were dropped as near duplicates of a pick.
    """
    m = len(vectors)
    if m == 0:
        return [], [], 0
    unit = normalize(vectors)
    rel = np.asarray(relevance, dtype=np.float64)
    if typicality > 0:
        rel = typical(rel, density(unit), typicality)
    top = rel.max()
    rel = rel / top if top > 0 else np.zeros(m)
    balancing = balance > 0 and classes is not None and len(np.unique(classes)) > 1
    counts = np.zeros(int(classes.max()) + 1 if balancing and classes is not None else 0, dtype=np.int64)
    closest = np.full(m, -1.0, dtype=np.float64)  # similarity to the closest pick; -1 before the first pick
    alive = np.ones(m, dtype=bool)
    picks: list[int] = []
    similarity: list[float | None] = []
    dropped = 0
    limit = 1.0 - duplicate_distance
    while len(picks) < n and alive.any():
        score = (1.0 - diversity) * rel - diversity * closest
        if balancing:
            assert classes is not None
            score -= balance_penalty(classes, alive, counts, balance)
        score[~alive] = -np.inf
        i = int(np.argmax(score))
        if balancing:
            assert classes is not None
            counts[classes[i]] += 1
        similarity.append(None if not picks else float(closest[i]))
        picks.append(i)
        alive[i] = False
        sims = unit @ unit[i]
        np.maximum(closest, sims, out=closest)
        copies = alive & (sims >= limit)
        dropped += int(copies.sum())
        alive &= ~copies
    return picks, similarity, dropped


def pool(priorities: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Indexes of the candidates worth spreading over: all of them, or the top ``max(50 n, 20000)`` by priority."""
    p = np.asarray(priorities, dtype=np.float64)
    size = max(POOL_PER_PICK * n, POOL_MIN)
    if len(p) <= size:
        return np.arange(len(p))
    return np.sort(np.argpartition(-p, size - 1)[:size])


def select(store: Store, score: Callable[[QueryRequest], list[QueryResult]], request: SelectRequest) -> Selection:
    """The ``n`` production inputs of ``store`` most worth labelling, spread over the space.

    Each input is judged by the answer stored with it (one columnar read of the typed answer columns); inputs
    stored without one (uploaded batches, the decorator's async mode) and, with ``rescore=True``, all of them are
    judged now by ``score`` against the current training data. ``since`` (seconds since the epoch) keeps only
    inputs logged from then on.
    """
    set_id, n = request.set_id, request.n
    if store.get_set(set_id) is None:
        raise UnknownEmbeddingSetError(set_id)
    answers = store.answers(set_id, since=request.since)
    if not len(answers):
        raise NoProductionDataError.for_set(set_id, request.since)
    missing = np.arange(len(answers)) if request.rescore else np.flatnonzero(~answers.answered)
    fresh: dict[int, QueryResult] = {}  # position in ``answers`` -> the answer given now
    for start in range(0, len(missing), 2048):
        part = missing[start : start + 2048]
        rows = answers.rows[part]
        records = store.records_at(set_id, "production", rows)
        results = score(
            QueryRequest(
                set_id,
                store.vectors_at(set_id, "production", rows),
                tuple(r.input_uri for r in records),
                tuple(r.inferences for r in records),
                request.thresholds,
            )
        )
        fresh.update(zip(part.tolist(), results, strict=True))
    if fresh:
        answers = answers.with_results(list(fresh), list(fresh.values()))
    recommended = np.flatnonzero(answers.training_recommended)
    ranked = priorities(answers.take(recommended))
    kept = pool(ranked, n)
    candidates = recommended[kept]
    distances = answers.threshold("near_duplicate")[candidates]
    known = distances[np.isfinite(distances)]
    duplicate_distance = float(np.median(known)) if len(known) else 0.02
    vectors = store.vectors_at(set_id, "production", answers.rows[candidates])
    classes = None
    if request.balance > 0:
        records = store.records_at(set_id, "production", answers.rows[candidates])
        labels = [class_of(r, fresh.get(int(c), r.result)) for r, c in zip(records, candidates, strict=True)]
        # No class anywhere (no predictions, unlabelled training): balance over clusters of the candidates instead.
        no_class = all(label is None for label in labels)
        classes = cluster_codes(normalize(vectors), n) if no_class else class_codes(labels)
    chosen, similarity, dropped = spread(
        vectors,
        ranked[kept],
        n,
        diversity=request.diversity,
        duplicate_distance=duplicate_distance,
        typicality=request.typicality,
        classes=classes,
        balance=request.balance,
    )
    positions = [int(candidates[c]) for c in chosen]
    picked = store.records_at(set_id, "production", answers.rows[positions])
    picks = []
    for rank, (c, position, sim, record) in enumerate(zip(chosen, positions, similarity, picked, strict=True), 1):
        result = fresh.get(position, record.result)
        assert result is not None
        picks.append(
            Pick(
                rank,
                record.id,
                record.input_uri,
                float(ranked[kept[c]]),
                dataclasses.replace(result, input_uri=record.input_uri, set_id=set_id),
                record.inferences,
                record.time,
                sim,
                record.preview,
            )
        )
    return Selection(set_id, tuple(picks), len(answers), len(recommended), dropped, len(missing))
