"""The in-memory batch: a header naming one embedding set and mode, and its records as columns.

A batch is what ``save()`` writes and uploads, what a background worker sends, what the engine stores and what a
page of an export reads back. :func:`new_batch` is the one way to make one; ``chroma_core.batch_format`` reads and
writes batches as files.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.types import QueryResult
from chroma_core.vectors import Matrix

__all__ = [
    "MODES",
    "PREVIEW_MAX",
    "BatchHeader",
    "Mode",
    "Records",
    "new_batch",
    "new_batch_id",
    "preview_of",
    "utc_timestamp",
]

Mode = Literal["training", "production"]
MODES: tuple[Mode, ...] = ("training", "production")
#: The longest preview kept with a record, in characters: a preview is for a person to recognise the input
#: (a truncated text, a file name, "image 640x480 RGB"), not a copy of it.
PREVIEW_MAX = 500


def preview_of(value: object, limit: int = PREVIEW_MAX) -> str | None:
    """A record's preview: ``value`` as one line of text, at most ``limit`` characters (cut with an ellipsis).

    >>> preview_of("a  long\n text", limit=8)
    'a long …'
    """
    if value is None:
        return None
    text = " ".join(str(value).split())
    limit = max(1, min(limit, PREVIEW_MAX))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def new_batch_id() -> str:
    return uuid.uuid4().hex


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class BatchHeader:
    """What every record of a batch shares: its batch id, embedding set, mode and dimension."""

    batch_id: str
    embedding_set: EmbeddingSet
    mode: Mode
    dimension: int
    created_at: str

    @property
    def set_id(self) -> str:
        return self.embedding_set.id


@dataclasses.dataclass
class Records:
    """Column-oriented records: row ``i`` of ``vectors`` belongs to ``ids[i]``, ``input_uris[i]``, …"""

    vectors: Matrix
    ids: list[str]
    input_uris: list[str]
    inferences: list[Any]
    labels: list[Any]
    times: list[float]
    #: The 1-based line of each record in the file it was read from (empty for records made in memory).
    lines: list[int] = dataclasses.field(default_factory=list)
    #: Production records may carry the answer Chroma gave for them; empty means none do.
    results: list[QueryResult | None] = dataclasses.field(default_factory=list)
    #: A short text to show for each record instead of its uri (see :func:`preview_of`); empty means none have one.
    previews: list[str | None] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.vectors)

    def result(self, i: int) -> QueryResult | None:
        return self.results[i] if self.results else None

    def preview(self, i: int) -> str | None:
        return self.previews[i] if self.previews else None

    def subset(self, rows: Sequence[int]) -> Records:
        """These rows only, in this order."""
        rows = list(rows)
        return Records(
            self.vectors[rows],
            [self.ids[i] for i in rows],
            [self.input_uris[i] for i in rows],
            [self.inferences[i] for i in rows],
            [self.labels[i] for i in rows],
            [self.times[i] for i in rows],
            [self.lines[i] for i in rows] if self.lines else [],
            [self.result(i) for i in rows] if self.results else [],
            [self.preview(i) for i in rows] if self.previews else [],
        )

    @classmethod
    def empty(cls, dimension: int) -> Records:
        return cls(np.empty((0, dimension), dtype=np.float32), [], [], [], [], [])

    @classmethod
    def concat(cls, parts: Sequence[Records], dimension: int) -> Records:
        if not parts:
            return cls.empty(dimension)
        out = cls(np.concatenate([p.vectors for p in parts]), [], [], [], [], [])
        for p in parts:
            out.ids += p.ids
            out.input_uris += p.input_uris
            out.inferences += p.inferences
            out.labels += p.labels
            out.times += p.times
            out.lines += p.lines
        if any(p.results for p in parts):
            out.results = [p.result(i) for p in parts for i in range(len(p))]
        if any(p.previews for p in parts):
            out.previews = [p.preview(i) for p in parts for i in range(len(p))]
        return out


def new_batch(
    embedding_set: EmbeddingSet,
    mode: Mode,
    vectors: Matrix,
    input_uris: Sequence[str],
    *,
    inferences: Sequence[Any] | None = None,
    labels: Sequence[Any] | None = None,
    times: Sequence[float] | None = None,
    results: Sequence[QueryResult | None] | None = None,
    previews: Sequence[str | None] | None = None,
    batch_id: str | None = None,
) -> tuple[BatchHeader, Records]:
    """A new batch of ``vectors`` (float32 rows), each record's id ``<batch_id>:<row>``.

    Missing columns default to None (``inferences``, ``labels``) and to now (``times``); ``results`` and
    ``previews`` are kept only when at least one is given.
    """
    n = len(vectors)
    batch_id = batch_id or new_batch_id()
    header = BatchHeader(batch_id, embedding_set, mode, int(vectors.shape[1]), utc_timestamp())
    records = Records(
        vectors,
        [f"{batch_id}:{i}" for i in range(n)],
        list(input_uris),
        [None] * n if inferences is None else list(inferences),
        [None] * n if labels is None else list(labels),
        [time.time()] * n if times is None else list(times),
        results=list(results) if results is not None and any(r is not None for r in results) else [],
        previews=list(previews) if previews is not None and any(p is not None for p in previews) else [],
    )
    return header, records
