"""Near duplicates inside a set's training data, and training inputs that production or another set repeats.

The request (:class:`DuplicatesRequest`) and the answer (:class:`DuplicateReport`): groups of training records
that are near copies of each other, and :class:`Copy` rows for production records or another set's training
records that nearly copy a training record (train/test leakage), as FiftyOne's ``compute_near_duplicates`` and
``compute_leaky_splits`` report them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from chroma_core.errors import ConfigError

__all__ = ["Copy", "DuplicateGroup", "DuplicateReport", "DuplicatesRequest"]


@dataclasses.dataclass(frozen=True)
class DuplicatesRequest:
    """Which set to look in; ``against``: another set whose training records may leak into this one's;
    ``threshold``: the cosine distance under which two inputs are near duplicates (None: the set's calibrated
    ``near_duplicate`` threshold); ``production``: also look for production inputs that copy training ones."""

    set_id: str
    against: str | None = None
    threshold: float | None = None
    production: bool = True

    def __post_init__(self) -> None:
        t = self.threshold
        if t is not None:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 <= t <= 2:
                raise ConfigError(f"threshold must be a cosine distance from 0 to 2, not {t!r}.")
            object.__setattr__(self, "threshold", float(t))
        if self.against is not None and self.against == self.set_id:
            raise ConfigError("against names the set itself; give another set to look for leakage into it.")

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"production": self.production}
        if self.against is not None:
            body["against"] = self.against
        if self.threshold is not None:
            body["threshold"] = self.threshold
        return body


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
    """Training records that are near copies of one another (linked by pairs within the threshold)."""

    input_uris: tuple[str, ...]
    rows: tuple[int, ...]
    max_distance: float  # the largest distance of a linking pair

    def to_dict(self) -> dict[str, Any]:
        return {"input_uris": list(self.input_uris), "rows": list(self.rows), "max_distance": self.max_distance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicateGroup:
        return cls(tuple(data["input_uris"]), tuple(int(r) for r in data["rows"]), float(data["max_distance"]))


@dataclasses.dataclass(frozen=True)
class Copy:
    """A record (production, or another set's training) that nearly copies the training record ``training_uri``."""

    input_uri: str
    row: int
    training_uri: str
    training_row: int
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Copy:
        return cls(
            str(data["input_uri"]),
            int(data["row"]),
            str(data["training_uri"]),
            int(data["training_row"]),
            float(data["distance"]),
        )


@dataclasses.dataclass(frozen=True)
class DuplicateReport:
    """Near duplicates of one set at ``threshold`` (cosine distance): within its training data (``groups``), in its
    production inputs (``production``) and in the training data of the set ``against`` (``leaks``)."""

    set_id: str
    threshold: float
    groups: tuple[DuplicateGroup, ...] = ()
    production: tuple[Copy, ...] = ()
    leaks: tuple[Copy, ...] = ()
    against: str | None = None

    @property
    def duplicated_training(self) -> int:
        """Training records that could be removed leaving one of each group."""
        return sum(len(g.input_uris) - 1 for g in self.groups)

    def __repr__(self) -> str:
        return (
            f"DuplicateReport(set_id={self.set_id[:12]!r}…, threshold={self.threshold:.4f}, "
            f"{len(self.groups)} groups, {len(self.production)} production copies, {len(self.leaks)} leaks)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "threshold": self.threshold,
            "against": self.against,
            "groups": [g.to_dict() for g in self.groups],
            "production": [c.to_dict() for c in self.production],
            "leaks": [c.to_dict() for c in self.leaks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicateReport:
        return cls(
            str(data["set_id"]),
            float(data["threshold"]),
            tuple(DuplicateGroup.from_dict(g) for g in data.get("groups", ())),
            tuple(Copy.from_dict(c) for c in data.get("production", ())),
            tuple(Copy.from_dict(c) for c in data.get("leaks", ())),
            data.get("against"),
        )
