"""Which production inputs to label next: rank the recommended ones, spread the picks, drop near duplicates.

A hundred picks should not be a hundred copies of one failure. :func:`spread` is maximal marginal relevance
(Carbonell & Goldstein, 1998) over unit vectors: each step takes the candidate that maximises
``(1 - diversity) * relevance - diversity * (cosine similarity to the closest pick so far)``; ``diversity=1`` is
farthest-point selection, ``diversity=0`` is plain priority order. A candidate within the near-duplicate distance
of a pick is dropped, whatever its priority.

Relevance is a candidate's *priority*: by how much its strongest signal exceeds its threshold, i.e. the largest of
``score / threshold`` over novelty, uncertainty and label disagreement, divided by the largest in the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from chroma_core.engine.index import normalize
from chroma_core.engine.store import Store
from chroma_core.errors import NoProductionDataError, UnknownEmbeddingSetError
from chroma_core.types import Pick, QueryRequest, QueryResult, Selection, SelectRequest

__all__ = ["pool", "priority", "select", "spread"]

#: The signals that make an input worth labelling, each with the threshold it is compared with.
_SIGNALS = ("novelty", "uncertainty", "label_disagreement")
#: Candidates kept for spreading, by priority: MMR costs picks x pool x dimension, and an input that far down the
#: priority order is not picked anyway unless the pool is all one failure, which the cap still covers.
POOL_PER_PICK, POOL_MIN = 50, 20_000


def priority(result: Mapping[str, Any]) -> float:
    """How far the strongest signal of a stored answer exceeds its threshold (``score / threshold``)."""
    scores = result.get("scores") or {}
    thresholds = result.get("thresholds") or {}
    best = 0.0
    for name in _SIGNALS:
        score, limit = scores.get(name), thresholds.get(name)
        if isinstance(score, (int, float)) and isinstance(limit, (int, float)) and limit > 0:
            best = max(best, float(score) / float(limit))
    return best


def spread(
    vectors: np.ndarray, relevance: np.ndarray, n: int, *, diversity: float, duplicate_distance: float
) -> tuple[list[int], list[float | None], int]:
    """Maximal marginal relevance over the rows of ``vectors`` (see the module docstring).

    Returns the chosen row indexes in pick order, each pick's similarity to the closest earlier pick, and how many
    candidates were dropped as near duplicates of a pick.
    """
    m = len(vectors)
    if m == 0:
        return [], [], 0
    unit = normalize(vectors)
    rel = np.asarray(relevance, dtype=np.float64)
    top = rel.max()
    rel = rel / top if top > 0 else np.zeros(m)
    closest = np.full(m, -1.0, dtype=np.float64)  # similarity to the closest pick; -1 before the first pick
    alive = np.ones(m, dtype=bool)
    picks: list[int] = []
    similarity: list[float | None] = []
    dropped = 0
    limit = 1.0 - duplicate_distance
    while len(picks) < n and alive.any():
        score = (1.0 - diversity) * rel - diversity * closest
        score[~alive] = -np.inf
        i = int(np.argmax(score))
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

    Each input is judged by the answer stored with it; inputs stored without one (uploaded batches, the
    decorator's async mode) and, with ``rescore=True``, all of them are judged now by ``score`` against the
    current training data. ``since`` (seconds since the epoch) keeps only inputs logged from then on.
    """
    set_id, n = request.set_id, request.n
    info = store.get_set(set_id)
    if info is None:
        raise UnknownEmbeddingSetError(set_id)
    count = info.production
    rows = np.arange(count)
    if request.since is not None and count:
        times = np.asarray(store.column(set_id, "production", "time")[:count], dtype=np.float64)
        rows = rows[times >= request.since]
    if not len(rows):
        raise NoProductionDataError.for_set(set_id, request.since)
    stored = store.column(set_id, "production", "result")[:count]
    answers: list[dict[str, Any] | None] = [stored[r] for r in rows.tolist()]
    vectors = store.vectors(set_id, "production")[:count][rows]
    missing = [i for i, a in enumerate(answers) if a is None or request.rescore]
    for start in range(0, len(missing), 2048):
        part = missing[start : start + 2048]
        records = store.records(set_id, "production", rows[part].tolist())
        fresh = score(
            QueryRequest(
                set_id,
                vectors[part],
                tuple(r.input_uri for r in records),
                tuple(r.inferences for r in records),
                request.thresholds,
            )
        )
        for i, result in zip(part, fresh, strict=True):
            answers[i] = result.stored()
    recommended = [i for i, a in enumerate(answers) if a is not None and a.get("training_recommended")]
    priorities = np.array([priority(answers[i] or {}) for i in recommended], dtype=np.float64)
    kept = pool(priorities, n)
    candidates = [recommended[i] for i in kept.tolist()]
    distances = [(answers[i] or {}).get("thresholds", {}).get("near_duplicate") for i in candidates]
    known = [float(d) for d in distances if isinstance(d, (int, float))]
    duplicate_distance = float(np.median(known)) if known else 0.02
    chosen, similarity, dropped = spread(
        vectors[candidates], priorities[kept], n, diversity=request.diversity, duplicate_distance=duplicate_distance
    )
    picked = store.records(set_id, "production", [int(rows[candidates[c]]) for c in chosen])
    picks = []
    for rank, (c, sim, record) in enumerate(zip(chosen, similarity, picked, strict=True), start=1):
        answer = answers[candidates[c]]
        assert answer is not None
        result = QueryResult.from_dict({**answer, "input_uri": record.input_uri, "set_id": set_id})
        picks.append(
            Pick(
                rank,
                record.id,
                record.input_uri,
                float(priorities[kept[c]]),
                result,
                record.inferences,
                record.time,
                sim,
            )
        )
    return Selection(set_id, tuple(picks), len(rows), len(recommended), dropped, len(missing))
