"""What Chroma answers about an input: its tags from a fixed vocabulary, its scores and the nearest training inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chroma_core.types.tables import Tabular, answer_columns

__all__ = ["TAGS", "Neighbor", "QueryResult", "QueryResults"]

TAGS = (
    "out_of_distribution",  # far from the training data: the k-th nearest neighbour is unusually distant
    "near_duplicate",  # almost the same as a training input: labelling it adds nothing
    "uncertain",  # the model's own class scores are unusually close
    "label_disagreement",  # the nearest training inputs mostly carry another label than the prediction
    "insufficient_training_data",  # the set holds too few training embeddings to judge
)


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

    def __repr__(self) -> str:
        # Short enough to read in a notebook: the answer, its tags and the main score; to_dict() has everything.
        novelty = self.scores.get("novelty")
        score = "" if not isinstance(novelty, float) else f", novelty={novelty:.3f}"
        return f"QueryResult({self.input_uri!r}, {self.recommendation}, tags={list(self.recommendations)}{score})"

    def row(self) -> dict[str, Any]:
        """This answer as one flat row (a table's columns)."""
        return {"input_uri": self.input_uri, **answer_columns(self), "set_id": self.set_id}

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


class QueryResults(list[QueryResult], Tabular):
    """The answers to a batch of inputs: a list of :class:`QueryResult`, and a table (``to_pandas()``)."""

    def rows(self) -> list[dict[str, Any]]:
        return [r.row() for r in self]

    def __repr__(self) -> str:
        if len(self) <= 3:
            return f"QueryResults({list.__repr__(self)})"
        recommended = sum(r.training_recommended for r in self)
        return f"QueryResults({len(self)} answers, {recommended} training_recommended; first: {self[0]!r})"
