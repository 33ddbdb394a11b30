"""Writing a batch into the SQLite store: the set's row, the vector file, the record rows, the batch's mark.

All of it runs inside the caller's write transaction (:meth:`SQLiteStore.put` holds the write lock): vectors are
appended to the partition's file and fsynced before the transaction that references them commits (see
:mod:`chroma_core.engine.sqlite_files`), so a crash leaves the old state or the whole batch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import sqlite_delete as deleting
from chroma_core.engine import sqlite_files as files
from chroma_core.engine.answers import ANSWER_COLUMNS, answer_row
from chroma_core.engine.repeats import note_conflicts, sort_repeats
from chroma_core.engine.store import PutResult
from chroma_core.json_text import json_text
from chroma_core.records import BatchHeader, Records
from chroma_core.vectors import check_dimension

__all__ = ["ensure_set", "partition", "put"]

# Fixed column names only (no user input): the S608 notes below are about string-built SQL in general.
_BASE = "set_id, mode, id, row, batch_id, input_uri, inferences, label, time, preview"
_INSERT = f"INSERT INTO records ({_BASE}) VALUES ({','.join('?' * 10)})"  # noqa: S608
# Records without an answer (all training ones) leave its columns out: binding 12 NULLs doubled the insert's cost.
_INSERT_ANSWERED = "INSERT INTO records ({}, {}) VALUES ({})".format(  # noqa: S608
    _BASE, ", ".join(ANSWER_COLUMNS), ",".join("?" * (10 + len(ANSWER_COLUMNS)))
)


def ensure_set(db: sqlite3.Connection, embedding_set: EmbeddingSet, dimension: int, what: str) -> None:
    """Create the set if it is new; otherwise check that ``dimension`` is its dimension (``what`` names the
    writer in the error)."""
    row = db.execute("SELECT dimension FROM sets WHERE id=?", (embedding_set.id,)).fetchone()
    if row is None:
        key_json = json.dumps(dict(embedding_set.key), sort_keys=True, ensure_ascii=False)
        db.execute(
            "INSERT INTO sets (id, key_json, dimension, created_at) VALUES (?,?,?,?)",
            (embedding_set.id, key_json, dimension, time.time()),
        )
    else:
        check_dimension(dimension, row[0], what)


def partition(db: sqlite3.Connection, set_id: str, mode: str) -> tuple[int, int, int, float] | None:
    """(dimension, committed rows, file generation, set created_at) of one (set, mode); None if no set."""
    columns = "dimension, training, training_gen" if mode == "training" else "dimension, production, production_gen"
    row = db.execute(f"SELECT {columns}, created_at FROM sets WHERE id=?", (set_id,)).fetchone()  # noqa: S608
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]), float(row[3]))


def put(
    db: sqlite3.Connection,
    directory: Path,
    header: BatchHeader,
    chunks: Iterable[Records],
    complete: Callable[[], bool],
) -> PutResult:
    """Store the chunks of one batch in the caller's transaction, idempotently by batch id and record id."""
    set_id, mode, dim = header.set_id, header.mode, header.dimension
    ensure_set(db, header.embedding_set, dim, f"batch {header.batch_id!r}")
    part = partition(db, set_id, mode)
    assert part is not None
    count, gen = part[1], part[2]
    done = db.execute(
        "SELECT complete FROM batches WHERE set_id=? AND batch_id=?", (set_id, header.batch_id)
    ).fetchone()
    if done is not None and done[0]:
        received = sum(len(c) for c in chunks)
        return PutResult(received, 0, received, batch_already_complete=True)
    received = stored = 0
    path = files.vector_path(directory, set_id, mode, gen)
    sorter = _Sorter(db, set_id, mode, path, count, dim)
    with files.appending(path, count, dim) as write:
        for records in chunks:
            if records.vectors.shape[1:] != (dim,):
                check_dimension(records.vectors.shape[1], dim, "this batch")
            received += len(records)
            keep = sorter.sort(records)
            if keep:
                write(records.vectors if len(keep) == len(records) else records.vectors[keep])
                _insert(db, header, records, keep, count + stored)
                stored += len(keep)
    if stored:
        column = "training" if mode == "training" else "production"
        db.execute(f"UPDATE sets SET {column} = {column} + ? WHERE id=?", (stored, set_id))  # noqa: S608
    db.execute(
        "INSERT INTO batches (set_id, batch_id, mode, complete, stored, updated_at) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT (set_id, batch_id) DO UPDATE SET "
        "complete = max(complete, excluded.complete), stored = stored + excluded.stored, "
        "updated_at = excluded.updated_at",
        (set_id, header.batch_id, mode, int(complete()), stored, time.time()),
    )
    conflicts = tuple(sorter.conflicts)
    note_conflicts(header, conflicts)
    return PutResult(received, stored, received - stored - len(conflicts), conflicts=conflicts)


def _insert(db: sqlite3.Connection, header: BatchHeader, records: Records, keep: list[int], first: int) -> None:
    """Insert the records at ``keep`` as rows ``first, first + 1, ...``."""
    rows = (
        (
            header.set_id,
            header.mode,
            records.ids[i],
            first + j,
            header.batch_id,
            records.input_uris[i],
            None if records.inferences[i] is None else json_text(records.inferences[i]),
            None if records.labels[i] is None else json_text(records.labels[i]),
            records.times[i],
            records.preview(i),
        )
        for j, i in enumerate(keep)
    )
    if records.results:
        answered = ((*row, *answer_row(records.results[i])) for row, i in zip(rows, keep, strict=True))
        db.executemany(_INSERT_ANSWERED, answered)
    else:
        db.executemany(_INSERT, rows)


class _Sorter:
    """Sorts each chunk's records into new ones, exact repeats and conflicts (see the Store contract).

    A repeated id is compared with the record stored first: one stored before this batch by its vector in the
    (committed) file and its uri; one stored by an earlier chunk of this batch, whose vector is not readable back
    before the batch's fsync, by a digest of its uri and vector. Those digests are taken only when a second chunk
    comes (the previous chunk is kept until then), so a batch of one chunk, the usual case, pays nothing for them.
    """

    def __init__(self, db: sqlite3.Connection, set_id: str, mode: str, path: Path, count: int, dim: int) -> None:
        self.db, self.set_id, self.mode, self.path, self.count, self.dim = db, set_id, mode, path, count, dim
        self.conflicts: list[str] = []
        self._earlier: dict[str, int] = {}  # id -> digest, of records stored by earlier chunks of this batch
        self._previous: tuple[Records, list[int]] | None = None

    def sort(self, records: Records) -> list[int]:
        """Indexes of the records of this chunk to store; conflicts are noted, exact repeats dropped."""
        if self._previous is not None:
            before, kept = self._previous
            self._earlier.update((before.ids[i], _digest(before, i)) for i in kept)
        ids = records.ids
        stored: dict[str, tuple[int, str]] = {}
        for part, marks in deleting.in_parts(ids):
            q = f"SELECT id, row, input_uri FROM records WHERE set_id=? AND mode=? AND id IN ({marks})"  # noqa: S608
            stored.update((r[0], (r[1], r[2])) for r in self.db.execute(q, (self.set_id, self.mode, *part)))
        old = [rid for rid, (row, _) in stored.items() if row < self.count]
        vectors = dict(zip(old, self._vectors([stored[rid][0] for rid in old]), strict=True))

        def same(rid: str, i: int) -> bool | None:
            found = stored.get(rid)
            if found is None:
                return None
            row, uri = found
            if row < self.count:
                return uri == records.input_uris[i] and np.array_equal(vectors[rid], records.vectors[i])
            return self._earlier.get(rid) == _digest(records, i)

        keep, conflicts, _ = sort_repeats(records, same)
        self.conflicts.extend(conflicts)
        self._previous = (records, keep)
        return keep

    def _vectors(self, rows: list[int]) -> np.ndarray:
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return files.read_rows(self.path, self.dim, self.count, np.asarray(rows, dtype=np.int64))


def _digest(records: Records, i: int) -> int:
    # Python's hash of the uri and the vector's bytes: 64 bits, so two different records collide (and one would
    # be taken for a repeat of the other) with a chance of 2**-64.
    return hash((records.input_uris[i], np.ascontiguousarray(records.vectors[i]).tobytes()))
