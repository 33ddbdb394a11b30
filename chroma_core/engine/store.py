"""The ``Store``: what the engine needs from durable storage, narrow enough for a database server to implement.

There are no file paths in it: a store may be files beside the application (:class:`SQLiteStore`, the embedded
default) or a database shared by many service replicas. Every store passes one contract test suite,
``tests/chroma_core/engine/test_store_contract.py``; that suite is what "a store" means.

What every store guarantees:

- **Idempotent writes.** ``put`` stores a batch in one transaction (all of it or none); a batch marked complete is
  skipped whole by its id, and a record is stored once per (set, mode, record id), so a retried upload never
  duplicates data. A set's dimension is fixed by its first write.
- **Conflicts are reported, not stored.** A record whose id is already stored (or came earlier in the same
  batch) with the same vector and ``input_uri`` is a *duplicate* and skipped silently; with another vector or
  ``input_uri`` it is a *conflict*: not stored either (the first record of an id wins), but its id is returned in
  ``PutResult.conflicts``, so the caller learns that data it sent was not kept.
- **Rows.** Each (set, mode) numbers its records 0, 1, 2, ... in the order they were stored; ``vectors`` and
  ``records`` read by row range or by rows. Deleting records renumbers the rows after them (order is kept) and
  bumps the set's ``revision``, so a reader that cached rows knows to read them again.
- **Answers as columns.** A production record's answer is kept as typed columns (see
  :mod:`chroma_core.engine.answers`) and ``answers`` reads them for a time window as arrays.
- **Deletes are real.** ``delete_set`` and ``delete_records`` leave nothing of the deleted data to read back, after
  a reopen or an index rebuild too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.answers import Answers
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.types import DeleteReport, QueryResult, SetInfo, UploadReport
from chroma_core.types.reports import CONFLICTS_NAMED
from chroma_core.vectors import Matrix

__all__ = ["Candidates", "DeleteReport", "PutResult", "Store", "StoredRecord"]


@dataclasses.dataclass(frozen=True)
class PutResult:
    """What one ``put`` did: records received, newly stored, skipped as exact repeats (``duplicates``), and the
    ids of those not stored because their id is stored with another vector or ``input_uri`` (``conflicts``, in
    the order received): ``received == stored + duplicates + len(conflicts)``."""

    received: int
    stored: int
    duplicates: int
    batch_already_complete: bool = False
    conflicts: tuple[str, ...] = ()

    def report(self, header: BatchHeader, problems: Sequence[object] = ()) -> UploadReport:
        """The upload report of this put of ``header``'s batch, with the reader's ``problems``."""
        return UploadReport(
            header.batch_id,
            header.set_id,
            header.mode,
            self.received,
            self.stored,
            self.duplicates,
            tuple(str(p) for p in problems),
            len(self.conflicts),
            self.conflicts[:CONFLICTS_NAMED],
        )


class StoredRecord(NamedTuple):
    """One stored record, as read back (its vector is read with ``vectors``/``vectors_at``).

    A named tuple rather than a dataclass: a set's model load reads one per training row (100k at once), and a
    tuple is built several times faster.
    """

    row: int
    id: str
    input_uri: str
    inferences: Any
    label: Any
    time: float
    #: The answer Chroma gave for a production input (rebuilt from its columns), or None.
    result: QueryResult | None = None
    #: A short text to show for the input instead of its uri (``Records.previews``), or None.
    preview: str | None = None


@dataclasses.dataclass(frozen=True)
class Candidates:
    """Candidate training rows for each query from a store's own index, to be re-ranked exactly by the caller.

    ``rows`` is ``(queries, k)`` int64, most similar first, ``-1`` where the index found fewer. The index covers
    the set's first ``covered`` training rows; rows after those are the caller's to search. ``vectors``, when a
    store sends them with the rows (saving the caller a second read for its exact re-rank), are the rows' stored
    float32 vectors, ``(queries, k, dimension)``, zeros where ``rows`` is ``-1``.
    """

    rows: np.ndarray
    covered: int
    vectors: np.ndarray | None = None


class Store(Protocol):
    """Durable storage of embedding sets (see the module docstring for what every store guarantees)."""

    # ---- sets --------------------------------------------------------------------------------------------------
    def list_sets(self) -> list[SetInfo]: ...
    def get_set(self, set_id: str) -> SetInfo | None: ...

    def create_set(self, embedding_set: EmbeddingSet, dimension: int) -> SetInfo:
        """Register a set (idempotent); its dimension is fixed from then on."""

    def delete_set(self, set_id: str) -> bool:
        """Remove a set and everything stored for it; False if there was no such set."""

    # ---- writing -----------------------------------------------------------------------------------------------
    def put(self, header: BatchHeader, chunks: Iterable[Records], *, complete: Callable[[], bool]) -> PutResult:
        """Store the chunks of one batch in one transaction, idempotently by batch id and record id.

        ``complete`` is asked once the chunks are exhausted (a file reader knows only then whether the file was
        whole); a batch stored complete is skipped whole next time.
        """

    # ---- reading by row ----------------------------------------------------------------------------------------
    def vectors(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> Matrix:
        """The float32 vectors of rows ``start..stop-1`` (to the end when ``stop`` is None)."""

    def vectors_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> Matrix:
        """The vectors of ``rows``, in that order."""

    def records(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> list[StoredRecord]:
        """The records of rows ``start..stop-1``, in row order."""

    def records_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> list[StoredRecord]:
        """The records of ``rows``, in that order."""

    # ---- reading by time and by answer -------------------------------------------------------------------------
    def answers(self, set_id: str, *, since: float | None = None, until: float | None = None) -> Answers:
        """The production answers of records whose time is in ``[since, until)``, in row order."""

    # ---- deleting ----------------------------------------------------------------------------------------------
    def delete_records(self, input_uris: Iterable[str], *, set_id: str | None = None) -> DeleteReport:
        """Remove training and production records with these ``input_uri`` values, in every set or in one."""

    # ---- nearest neighbours (optional) -------------------------------------------------------------------------
    def nearest(self, set_id: str, queries: Matrix, k: int) -> Candidates | None:
        """Up to ``k`` candidate training rows per normalised query from the store's index; None without one."""

    # ---- small per-set state -----------------------------------------------------------------------------------
    def read_state(self, set_id: str, key: str) -> dict[str, Any] | None:
        """A small JSON value kept for a set under ``key`` (None if absent); gone with the set."""

    def write_state(self, set_id: str, key: str, value: dict[str, Any]) -> bool:
        """Keep ``value`` under ``key``; False when it could not be written now (state is never essential)."""

    def close(self) -> None: ...


def __getattr__(name: str) -> Any:
    # ``from chroma_core.engine.store import SQLiteStore`` kept working when the SQLite store got its own module.
    if name == "SQLiteStore":
        from chroma_core.engine.sqlite_store import SQLiteStore

        return SQLiteStore
    raise AttributeError(name)
