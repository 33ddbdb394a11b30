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

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chroma_core.engine.index import normalize
from chroma_core.errors import ChromaError
from chroma_core.results import QueryResult

__all__ = ["Pick", "Selection", "check_selection_args", "priority", "spread"]

#: The signals that make an input worth labelling, each with the threshold it is compared with.
_SIGNALS = ("novelty", "uncertainty", "label_disagreement")
#: Candidates kept for spreading, by priority: MMR costs picks x pool x dimension, and an input that far down the
#: priority order is not picked anyway unless the pool is all one failure, which the cap still covers.
POOL_PER_PICK, POOL_MIN = 50, 20_000


@dataclasses.dataclass(frozen=True)
class Pick:
    """One production input chosen for labelling."""

    rank: int
    id: str  # the stored record's id
    input_uri: str
    priority: float
    result: QueryResult
    inferences: Any = None
    time: float = 0.0
    similarity_to_picked: float | None = None  # cosine similarity to the closest earlier pick

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "id": self.id,
            "input_uri": self.input_uri,
            "priority": self.priority,
            "recommendations": list(self.result.recommendations),
            "similarity_to_picked": self.similarity_to_picked,
            "inferences": self.inferences,
            "time": self.time,
            "result": self.result.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pick:
        return cls(
            rank=int(data["rank"]),
            id=str(data["id"]),
            input_uri=str(data["input_uri"]),
            priority=float(data["priority"]),
            result=QueryResult.from_dict(data["result"]),
            inferences=data.get("inferences"),
            time=float(data.get("time", 0.0)),
            similarity_to_picked=data.get("similarity_to_picked"),
        )


@dataclasses.dataclass(frozen=True)
class Selection:
    """The answer to "what should I label next?" for one embedding set.

    ``considered`` production inputs were looked at, ``recommended`` of them were recommended for training,
    ``near_duplicates_dropped`` were left out as near copies of a pick.
    """

    set_id: str
    picks: tuple[Pick, ...]
    considered: int
    recommended: int
    near_duplicates_dropped: int
    rescored: int = 0  # inputs scored now, against the current training data (no stored answer, or rescore=True)

    @property
    def input_uris(self) -> list[str]:
        return [p.input_uri for p in self.picks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "considered": self.considered,
            "recommended": self.recommended,
            "near_duplicates_dropped": self.near_duplicates_dropped,
            "rescored": self.rescored,
            "picks": [p.to_dict() for p in self.picks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        return cls(
            set_id=str(data["set_id"]),
            picks=tuple(Pick.from_dict(p) for p in data["picks"]),
            considered=int(data["considered"]),
            recommended=int(data["recommended"]),
            near_duplicates_dropped=int(data["near_duplicates_dropped"]),
            rescored=int(data.get("rescored", 0)),
        )


def check_selection_args(n: Any, diversity: Any) -> None:
    """Reject what would give a silently wrong selection, with the fix in the message."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ChromaError(f"n must be a whole number of picks, at least 1; got {n!r}.")
    if isinstance(diversity, bool) or not isinstance(diversity, (int, float)) or not 0.0 <= diversity <= 1.0:
        raise ChromaError(f"diversity must be a number from 0 (priority order) to 1 (spread only); got {diversity!r}.")


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
