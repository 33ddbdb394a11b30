"""What an upload or a delete did, and a set as stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["DeleteReport", "SetInfo", "UploadReport"]


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
