"""What Chroma is asked: a query of embeddings against a set, a selection of inputs to label. Each request checks
itself when it is built, so the embedded engine and the service refuse the same input with the same message."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chroma_core.embedding_set import SetRef, set_id_of
from chroma_core.errors import ChromaError, InvalidEmbeddingError
from chroma_core.types.thresholds import DEFAULT_THRESHOLDS, Thresholds
from chroma_core.vectors import Matrix, to_matrix

__all__ = ["MAX_PICKS", "QueryRequest", "SelectRequest"]


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
    thresholds: Thresholds = DEFAULT_THRESHOLDS

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
    # The defaults are those measured best on real text embeddings (docs/triage.md, benchmarks/bench_select.py).
    diversity: float = 0.7
    since: float | None = None
    rescore: bool = False
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    #: Weight of local density among the candidates: dense regions of novelty before lone outliers (0 = off).
    typicality: float = 1.0
    #: Weight of class balance over the candidates' predicted labels (0 = off, 1 = every class before a repeat).
    balance: float = 0.0

    def __post_init__(self) -> None:
        _check_set_id(self.set_id)
        n = self.n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PICKS:
            raise ChromaError(f"n must be a whole number of picks from 1 to {MAX_PICKS:,}; got {n!r}.")
        d = self.diversity
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 1.0:
            raise ChromaError(f"diversity must be a number from 0 (priority order) to 1 (spread only); got {d!r}.")
        object.__setattr__(self, "diversity", float(d))
        for name, meaning in (("typicality", "dense regions first"), ("balance", "every class before a repeat")):
            w = getattr(self, name)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 1.0:
                raise ChromaError(f"{name} must be a weight from 0 (off) to 1 ({meaning}); got {w!r}.")
            object.__setattr__(self, name, float(w))
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
        body: dict[str, Any] = {
            "n": self.n,
            "diversity": self.diversity,
            "typicality": self.typicality,
            "balance": self.balance,
            "rescore": self.rescore,
        }
        if self.since is not None:
            body["since"] = self.since
        if self.thresholds.overrides():
            body["thresholds"] = self.thresholds.overrides()
        return body
