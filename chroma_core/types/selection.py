"""The answer to "what should I label next?": picks, ranked and spread over the embedding space."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from chroma_core.types.results import QueryResult
from chroma_core.types.tables import Tabular, answer_columns

__all__ = ["Pick", "Selection"]


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

    def __repr__(self) -> str:
        shown = self.input_uri if self.preview is None else f"{self.input_uri} {self.preview[:40]!r}"
        return f"Pick(#{self.rank} {shown}, priority={self.priority:.2f}, tags={list(self.result.recommendations)})"

    def row(self) -> dict[str, Any]:
        """This pick as one flat row (a table's columns)."""
        return {
            "rank": self.rank,
            "id": self.id,
            "input_uri": self.input_uri,
            "preview": self.preview,
            "priority": self.priority,
            "similarity_to_picked": self.similarity_to_picked,
            "time": self.time,
            **answer_columns(self.result),
        }

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
class Selection(Tabular):
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

    def rows(self) -> list[dict[str, Any]]:
        return [p.row() for p in self.picks]

    def __repr__(self) -> str:
        first = ", ".join(repr(p.input_uri) for p in self.picks[:3]) + (", …" if len(self.picks) > 3 else "")
        return (
            f"Selection(set_id={self.set_id[:12]!r}…, {len(self.picks)} picks [{first}], considered={self.considered}, "
            f"recommended={self.recommended}, near_duplicates_dropped={self.near_duplicates_dropped})"
        )

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
