"""The public value types: what Chroma is asked (requests), what it answers, and what it reports.

Plain frozen dataclasses over numpy at most, shared by the engine, the transports, the sessions and the public face;
nothing here imports the engine, a transport or a server. Requests and thresholds are validated once, when they are
built, so the embedded engine and the service refuse the same input with the same message (the service answers
422 with it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chroma_core.embedding_set import SetRef, set_id_of
from chroma_core.errors import ChromaError, ConfigError, InvalidEmbeddingError
from chroma_core.vectors import Matrix, to_matrix

__all__ = [
    "TAGS",
    "DeleteReport",
    "Neighbor",
    "Pick",
    "QueryRequest",
    "QueryResult",
    "SelectRequest",
    "Selection",
    "SetInfo",
    "Thresholds",
    "UploadReport",
]

#: The fixed vocabulary of recommendation tags (documented in docs/recommendations.md). New tags are only ever
#: appended: stores keep a record's tags as bits in this order.
TAGS = (
    "out_of_distribution",  # far from the training data: the k-th nearest neighbour is unusually distant
    "near_duplicate",  # almost the same as a training input: labelling it adds nothing
    "uncertain",  # the model's own class scores are unusually close
    "label_disagreement",  # the nearest training inputs mostly carry another label than the prediction
    "insufficient_training_data",  # the set holds too few training embeddings to judge
)


# ---- answers -------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Neighbor:
    """A training input close to the query: evidence behind the recommendation."""

    input_uri: str
    similarity: float
    label: Any = None


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """Chroma's recommendation for one embedding, based on its relationship with the training data.

    >>> r = QueryResult("/img/1.png", ("near_duplicate",), False, True)
    >>> r.not_useful, r.recommendation
    (True, 'not_useful')
    """

    input_uri: str
    recommendations: tuple[str, ...]
    training_recommended: bool
    not_useful: bool
    scores: dict[str, float | None] = dataclasses.field(default_factory=dict)
    thresholds: dict[str, float | None] = dataclasses.field(default_factory=dict)
    nearest: tuple[Neighbor, ...] = ()
    set_id: str = ""

    @property
    def recommendation(self) -> str:
        """One word for the whole answer: training_recommended, not_useful, insufficient_training_data or neutral."""
        if self.training_recommended:
            return "training_recommended"
        if self.not_useful:
            return "not_useful"
        if "insufficient_training_data" in self.recommendations:
            return "insufficient_training_data"
        return "neutral"

    def to_dict(self) -> dict[str, Any]:
        return {
            "recommendation": self.recommendation,
            "input_uri": self.input_uri,
            "recommendations": list(self.recommendations),
            "training_recommended": self.training_recommended,
            "not_useful": self.not_useful,
            "scores": dict(self.scores),
            "thresholds": dict(self.thresholds),
            # Not dataclasses.asdict: its deep copy was two thirds of the cost of storing a production record.
            "nearest": [{"input_uri": n.input_uri, "similarity": n.similarity, "label": n.label} for n in self.nearest],
            "set_id": self.set_id,
        }

    def stored(self) -> dict[str, Any]:
        """:meth:`to_dict` without what the stored record already holds (its ``input_uri`` and set)."""
        out = self.to_dict()
        del out["input_uri"], out["set_id"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryResult:
        return cls(
            input_uri=data["input_uri"],
            recommendations=tuple(data["recommendations"]),
            training_recommended=bool(data["training_recommended"]),
            not_useful=bool(data["not_useful"]),
            scores=dict(data.get("scores", {})),
            thresholds=dict(data.get("thresholds", {})),
            nearest=tuple(Neighbor(**n) for n in data.get("nearest", [])),
            set_id=data.get("set_id", ""),
        )


@dataclasses.dataclass(frozen=True)
class UploadReport:
    """What happened to one batch: how many good records were read and stored, and what was wrong."""

    batch_id: str
    set_id: str
    mode: str
    read: int
    stored: int
    duplicates: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the file was whole and every line was good."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "problems": list(self.problems), "ok": self.ok}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UploadReport:
        names = [f.name for f in dataclasses.fields(cls) if f.name != "problems"]
        return cls(**{n: data[n] for n in names}, problems=tuple(data.get("problems", ())))


@dataclasses.dataclass(frozen=True)
class DeleteReport:
    """What a delete removed: records of each mode, the sets they were in, and local files it cleaned."""

    training: int
    production: int
    sets: tuple[str, ...]
    files: int = 0  # spill and batch files under the persist directory rewritten or removed

    @property
    def deleted(self) -> int:
        return self.training + self.production

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "sets": list(self.sets), "deleted": self.deleted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeleteReport:
        return cls(int(data["training"]), int(data["production"]), tuple(data["sets"]), int(data.get("files", 0)))


@dataclasses.dataclass(frozen=True)
class SetInfo:
    """An embedding set as stored: its dict, dimension and record counts.

    ``revision`` is bumped whenever stored records are removed (rows after them are renumbered), so whoever
    cached a set's rows knows to read them again.
    """

    id: str
    embedding_set: dict[str, Any]
    dimension: int
    training: int
    production: int
    created_at: float = 0.0
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "embedding_set": self.embedding_set,
            "dimension": self.dimension,
            "training": self.training,
            "production": self.production,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetInfo:
        return cls(
            data["id"],
            dict(data["embedding_set"]),
            int(data["dimension"]),
            int(data["training"]),
            int(data["production"]),
            float(data.get("created_at", 0.0)),
            int(data.get("revision", 0)),
        )


# ---- thresholds ------------------------------------------------------------------------------------------------------

#: Overridable cut-offs and their ranges (cosine distances lie in [0, 2]; margins and shares in [0, 1]).
_CUTOFFS = {"novelty": 2.0, "near_duplicate": 2.0, "uncertainty": 1.0, "label_disagreement": 1.0}
#: Whole-number settings and their ranges: a k in the thousands would make every query scan for nothing.
_COUNTS = {"k": (1, 1000), "min_training": (2, 10**9), "neighbors": (0, 100)}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"thresholds.{name} must be a finite number, not {value!r}.")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Overrides of the calibrated thresholds; ``None`` means "calibrated from the training data".

    >>> Thresholds(novelty=0.3, percentile=99).percentile
    99.0
    """

    novelty: float | None = None
    near_duplicate: float | None = None  # cosine *distance* to the nearest training input
    uncertainty: float | None = None
    label_disagreement: float | None = None
    percentile: float = 95.0
    duplicate_percentile: float = 1.0
    k: int = 10
    min_training: int = 20
    neighbors: int = 5

    def __post_init__(self) -> None:
        for name, top in _CUTOFFS.items():
            value = getattr(self, name)
            if value is not None:
                number = _number(name, value)
                if not 0.0 <= number <= top:
                    raise ConfigError(f"thresholds.{name} must lie between 0 and {top:g}, not {value!r}.")
                object.__setattr__(self, name, number)
        for name in ("percentile", "duplicate_percentile"):
            number = _number(name, getattr(self, name))
            if not 0.0 < number < 100.0:
                raise ConfigError(f"thresholds.{name} must lie strictly between 0 and 100, not {number:g}.")
            object.__setattr__(self, name, number)
        for name, (low, high) in _COUNTS.items():
            value = getattr(self, name)
            number = _number(name, value)
            if not number.is_integer() or not low <= number <= high:
                raise ConfigError(f"thresholds.{name} must be a whole number from {low} to {high}, not {value!r}.")
            object.__setattr__(self, name, int(number))

    @classmethod
    def coerce(cls, value: Thresholds | Mapping[str, Any] | None) -> Thresholds:
        """A ``Thresholds`` from itself, a dict of overrides (unknown names refused) or None (the defaults)."""
        if value is None:
            return _DEFAULT_THRESHOLDS
        if isinstance(value, Thresholds):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"thresholds must be a dict such as {{'novelty': 0.3}}, not {type(value).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
        return cls(**value)

    def overrides(self) -> dict[str, Any]:
        """Only what differs from the defaults (what a client sends; the service applies its defaults)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(_DEFAULT_THRESHOLDS, f.name)
        }


_DEFAULT_THRESHOLDS = Thresholds()


# ---- requests --------------------------------------------------------------------------------------------------------


def _check_set_id(set_id: Any) -> None:
    if not isinstance(set_id, str) or not set_id:
        raise ChromaError(f"an embedding set id must be a non-empty string, not {set_id!r}.")


@dataclasses.dataclass(frozen=True)
class QueryRequest:
    """Ask for recommendations on each row of ``vectors`` (float32, finite) against one set's training data.

    >>> request = QueryRequest("3f2a...", np.ones((1, 4), np.float32), ("/a",))
    >>> len(request)
    1
    """

    set_id: str
    vectors: Matrix
    input_uris: tuple[str, ...]
    inferences: tuple[Any, ...] | None = None
    thresholds: Thresholds = _DEFAULT_THRESHOLDS

    def __post_init__(self) -> None:
        _check_set_id(self.set_id)
        v = self.vectors
        if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim != 2 or not v.shape[0] or not v.shape[1]:
            raise InvalidEmbeddingError(
                "a query needs a non-empty 2-d float32 array of embeddings (use chroma_core.vectors.to_matrix)."
            )
        if not np.isfinite(v).all():
            raise InvalidEmbeddingError("query embeddings must be finite: drop or fix rows holding NaN or infinity.")
        n = len(v)
        uris = tuple(self.input_uris)
        if len(uris) != n:
            raise InvalidEmbeddingError(f"{len(uris)} input_uris for {n} embeddings; they must match.")
        for uri in uris:
            if not isinstance(uri, str) or not uri:
                raise InvalidEmbeddingError(f"input_uri must be a non-empty string, got {uri!r}.")
        object.__setattr__(self, "input_uris", uris)
        if self.inferences is not None:
            infs = tuple(self.inferences)
            if len(infs) != n:
                raise InvalidEmbeddingError(f"{len(infs)} inferences for {n} embeddings; they must match.")
            object.__setattr__(self, "inferences", infs if any(i is not None for i in infs) else None)
        object.__setattr__(self, "thresholds", Thresholds.coerce(self.thresholds))

    @classmethod
    def of(
        cls,
        embedding_set: SetRef,
        vectors: Any,
        input_uris: Sequence[str],
        inferences: Sequence[Any] | None = None,
        thresholds: Thresholds | Mapping[str, Any] | None = None,
    ) -> QueryRequest:
        """A request from what callers have at hand: a set's dict or id, any 2-d array (numpy, torch, lists).

        >>> QueryRequest.of({"model": "m"}, [[0.1, 0.2]], ["/a"]).vectors.dtype
        dtype('float32')
        """
        matrix = to_matrix(vectors, batch=True)
        infs = None if inferences is None else tuple(inferences)
        set_id = embedding_set if isinstance(embedding_set, str) else set_id_of(embedding_set)
        return cls(set_id, matrix, tuple(input_uris), infs, Thresholds.coerce(thresholds))

    def __len__(self) -> int:
        return len(self.vectors)

    def inference(self, i: int) -> Any:
        return None if self.inferences is None else self.inferences[i]

    def part(self, rows: Sequence[int]) -> QueryRequest:
        """The same question for some rows only."""
        rows = list(rows)
        infs = None if self.inferences is None else tuple(self.inferences[i] for i in rows)
        uris = tuple(self.input_uris[i] for i in rows)
        return QueryRequest(self.set_id, self.vectors[rows], uris, infs, self.thresholds)


#: The most picks one selection may ask for: each pick is a pass over the candidate pool.
MAX_PICKS = 10_000


@dataclasses.dataclass(frozen=True)
class SelectRequest:
    """Ask for the ``n`` stored production inputs of a set most worth labelling (see ``chroma.select``)."""

    set_id: str
    n: int = 100
    diversity: float = 0.5
    since: float | None = None
    rescore: bool = False
    thresholds: Thresholds = _DEFAULT_THRESHOLDS

    def __post_init__(self) -> None:
        _check_set_id(self.set_id)
        n = self.n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PICKS:
            raise ChromaError(f"n must be a whole number of picks from 1 to {MAX_PICKS:,}; got {n!r}.")
        d = self.diversity
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 1.0:
            raise ChromaError(f"diversity must be a number from 0 (priority order) to 1 (spread only); got {d!r}.")
        object.__setattr__(self, "diversity", float(d))
        if self.since is not None:
            if (
                isinstance(self.since, bool)
                or not isinstance(self.since, (int, float))
                or not math.isfinite(self.since)
            ):
                raise ChromaError(f"since must be seconds since the epoch, not {self.since!r}.")
            object.__setattr__(self, "since", float(self.since))
        if not isinstance(self.rescore, bool):
            raise ChromaError(f"rescore must be True or False, not {self.rescore!r}.")
        object.__setattr__(self, "thresholds", Thresholds.coerce(self.thresholds))

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/sets/{id}/select`` (the set id is in the path)."""
        body: dict[str, Any] = {"n": self.n, "diversity": self.diversity, "rescore": self.rescore}
        if self.since is not None:
            body["since"] = self.since
        if self.thresholds.overrides():
            body["thresholds"] = self.thresholds.overrides()
        return body


# ---- selections ------------------------------------------------------------------------------------------------------


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
    preview: str | None = None  # the short text stored with the input, to show instead of its uri

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "id": self.id,
            "input_uri": self.input_uri,
            "preview": self.preview,
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
            preview=data.get("preview"),
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
