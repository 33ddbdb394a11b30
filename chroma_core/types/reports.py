"""What an upload or a delete did, and a set as stored."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CONFLICTS_NAMED", "DeleteReport", "SetInfo", "UploadReport"]


@dataclasses.dataclass(frozen=True)
class UploadReport:
    """What happened to one batch: how many good records were read and stored, and what was wrong.

    ``read == stored + duplicates + conflicts``. A *duplicate* is a record already stored with the same id,
    vector and ``input_uri`` (a retried upload): skipped, as it should be. A *conflict* is a record whose id is
    already stored (or came earlier in the batch) with another vector or ``input_uri``: it is not stored (the
    first record of an id wins), and its id is named in ``conflicting_ids`` (the first
    :data:`CONFLICTS_NAMED`) so that the caller can give it an id of its own and send it again.
    """

    batch_id: str
    set_id: str
    mode: str
    read: int
    stored: int
    duplicates: int
    problems: tuple[str, ...] = ()
    conflicts: int = 0
    conflicting_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the file was whole, every line was good and no record conflicted with a stored one."""
        return not self.problems and not self.conflicts

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "problems": list(self.problems),
            "conflicting_ids": list(self.conflicting_ids),
            "ok": self.ok,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UploadReport:
        # A server older than conflict reports answers without those two fields.
        names = [f.name for f in dataclasses.fields(cls) if f.name not in _OPTIONAL]
        return cls(
            **{n: data[n] for n in names},
            problems=tuple(data.get("problems", ())),
            conflicts=int(data.get("conflicts", 0)),
            conflicting_ids=tuple(data.get("conflicting_ids", ())),
        )

    @classmethod
    def combined(cls, batch_id: str, set_id: str, mode: str, parts: Sequence[UploadReport]) -> UploadReport:
        """One report for a batch uploaded in ``parts`` (each its own request): counts summed, problems and
        conflicting ids in order (the first :data:`CONFLICTS_NAMED` of those)."""
        return cls(
            batch_id,
            set_id,
            mode,
            sum(r.read for r in parts),
            sum(r.stored for r in parts),
            sum(r.duplicates for r in parts),
            tuple(p for r in parts for p in r.problems),
            sum(r.conflicts for r in parts),
            tuple(i for r in parts for i in r.conflicting_ids)[:CONFLICTS_NAMED],
        )


#: How many conflicting record ids an upload report names (it counts them all).
CONFLICTS_NAMED = 100

_OPTIONAL = frozenset({"problems", "conflicts", "conflicting_ids"})


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
