"""Writing a batch into the PostgreSQL store, inside the caller's transaction (as its tenant).

The set's row is locked (``SELECT ... FOR UPDATE``) so that two replicas storing batches of one set take turns and
number rows without gaps. The records go by binary ``COPY`` into a temporary staging table (``COPY FROM`` into the
records table itself is refused: it has row-level security), then into the records in one statement that drops
the ids already stored and the repeats within the batch (``ON CONFLICT DO NOTHING`` as the last word): a batch
sent twice, or by two replicas at once, is stored once. A repeat that differs from the record stored for its id is
a conflict (the Store contract), found by one join after the move.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.answers import ANSWER_COLUMNS, answer_row
from chroma_core.engine.repeats import note_conflicts, sort_repeats
from chroma_core.engine.store import PutResult
from chroma_core.json_text import json_text
from chroma_core.records import BatchHeader, Records
from chroma_core.vectors import check_dimension

__all__ = ["SMALL_BATCH", "lock_set", "put"]

_STAGED = ("ord", "id", "input_uri", "inferences", "label", "time", "preview", "embedding", *ANSWER_COLUMNS)
_STAGED_TYPES = (
    "bigint", "text", "text", "text", "text", "float8", "text", "vector",
    "int2", "int2", "int8", *["float8"] * 8, "text",
)  # fmt: skip
_STAGING = "CREATE TEMP TABLE chroma_staging ({}) ON COMMIT DROP".format(
    ", ".join(f"{c} {t}" for c, t in zip(_STAGED, _STAGED_TYPES, strict=True))
)
_MOVE = (  # noqa: S608 - fixed column names only
    "INSERT INTO chroma_records (tenant, set_id, mode, batch_id, row, {cols}) "
    "SELECT %(tenant)s, %(set)s, %(mode)s, %(batch)s, %(base)s + row_number() OVER (ORDER BY s.ord) - 1, {scols} "
    "FROM (SELECT DISTINCT ON (id) * FROM chroma_staging ORDER BY id, ord) s WHERE NOT EXISTS ("
    "SELECT 1 FROM chroma_records r WHERE r.set_id = %(set)s AND r.tenant = %(tenant)s AND r.mode = %(mode)s "
    "AND r.id = s.id) ORDER BY s.ord ON CONFLICT DO NOTHING"
).format(cols=", ".join(_STAGED[1:]), scols=", ".join(f"s.{c}" for c in _STAGED[1:]))
#: Batches of one chunk of at most this many records skip the staging table (its creation, its COPY and the move
#: cost more than the insert itself for a small batch, see benchmarks/bench_postgres.py).
SMALL_BATCH = 2000
_INSERT_ARRAYS = (  # noqa: S608 - fixed column names only
    "INSERT INTO chroma_records (tenant, set_id, mode, batch_id, row, {cols}) SELECT %s, %s, %s, %s, u.* "
    "FROM unnest({arrays}) AS u"
).format(
    cols=", ".join(_STAGED[1:]),
    # %b: binary parameters (pgvector's text form of 100 vectors took 80 ms to write; its binary form, 1 ms).
    arrays=", ".join(f"%b::{'bigint' if c == 'ord' else t}[]" for c, t in zip(_STAGED, _STAGED_TYPES, strict=True)),
)
# After the move every staged id has its stored record (older, or the first of the id in this batch): a staged one
# that differs from it is a conflict (the Store contract), in the order received.
_CONFLICTS = (
    "SELECT s.id FROM chroma_staging s JOIN chroma_records r ON r.set_id = %(set)s AND r.tenant = %(tenant)s "
    "AND r.mode = %(mode)s AND r.id = s.id WHERE r.embedding <> s.embedding OR r.input_uri <> s.input_uri "
    "ORDER BY s.ord"
)


def lock_set(conn: Any, tenant: str, embedding_set: EmbeddingSet, dimension: int, what: str) -> tuple[int, int]:
    """Create the set if needed and lock its row for this transaction: the (training, production) slots used, which
    are the counts plus the partitions' holes (:mod:`~chroma_core.engine.postgres_holes`): new rows go after."""
    key_json = json.dumps(dict(embedding_set.key), sort_keys=True, ensure_ascii=False)
    conn.execute(
        "INSERT INTO chroma_sets (tenant, set_id, key_json, dimension, created_at) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (tenant, embedding_set.id, key_json, dimension, time.time()),
    )
    have, training, production = conn.execute(
        "SELECT dimension, training + cardinality(training_holes), production + cardinality(production_holes) "
        "FROM chroma_sets WHERE set_id = %s AND tenant = %s FOR UPDATE",
        (embedding_set.id, tenant),
    ).fetchone()
    check_dimension(dimension, have, what)
    return int(training), int(production)


def put(
    conn: Any,
    tenant: str,
    header: BatchHeader,
    chunks: Iterable[Records],
    complete: Callable[[], bool],
    *,
    small: int = SMALL_BATCH,
) -> tuple[PutResult, int]:
    """Store one batch in the caller's transaction: (what was done, the partition's slots used after it).

    A batch of one chunk of at most ``small`` records goes straight into the records table (see
    :data:`SMALL_BATCH`); a larger one through the staging table.
    """
    set_id, mode, dim = header.set_id, header.mode, header.dimension
    counts = lock_set(conn, tenant, header.embedding_set, dim, f"batch {header.batch_id!r}")
    count = counts[0] if mode == "training" else counts[1]
    done = conn.execute(
        "SELECT complete FROM chroma_batches WHERE set_id = %s AND tenant = %s AND batch_id = %s",
        (set_id, tenant, header.batch_id),
    ).fetchone()
    if done is not None and done[0]:
        received = sum(len(c) for c in chunks)
        return PutResult(received, 0, received, batch_already_complete=True), count
    first, rest = _first_and_rest(chunks)
    if first is not None and rest is None and len(first) <= small:
        received = len(first)
        stored, conflicts = _put_directly(conn, tenant, header, first, count)
    else:
        received, stored, conflicts = _put_staged(conn, tenant, header, _chain(first, rest), count)
    column = "training" if mode == "training" else "production"
    if stored:
        conn.execute(
            f"UPDATE chroma_sets SET {column} = {column} + %s WHERE set_id = %s AND tenant = %s",  # noqa: S608
            (stored, set_id, tenant),
        )
    conn.execute(
        "INSERT INTO chroma_batches (tenant, set_id, batch_id, mode, complete, stored, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (set_id, tenant, batch_id) DO UPDATE SET "
        "complete = chroma_batches.complete OR excluded.complete, stored = chroma_batches.stored + "
        "excluded.stored, updated_at = excluded.updated_at",
        (tenant, set_id, header.batch_id, mode, bool(complete()), stored, time.time()),
    )
    note_conflicts(header, conflicts)
    duplicates = received - stored - len(conflicts)
    return PutResult(received, stored, duplicates, conflicts=conflicts), count + stored


def _first_and_rest(chunks: Iterable[Records]) -> tuple[Records | None, Iterator[Records] | None]:
    """The first chunk, and the iterator of the others (None when there are none: the batch is one chunk)."""
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return None, None
    second = next(it, None)
    return first, None if second is None else itertools.chain([second], it)


def _chain(first: Records | None, rest: Iterator[Records] | None) -> Iterator[Records]:
    if first is not None:
        yield first
    if rest is not None:
        yield from rest


def _put_directly(
    conn: Any, tenant: str, header: BatchHeader, records: Records, count: int
) -> tuple[int, tuple[str, ...]]:
    """A small batch: its ids looked up, repeats sorted here, the new records inserted in one statement."""
    set_id, mode, dim = header.set_id, header.mode, header.dimension
    if records.vectors.shape[1:] != (dim,):
        check_dimension(records.vectors.shape[1], dim, "this batch")
    found = conn.execute(
        "SELECT id, input_uri, embedding FROM chroma_records WHERE set_id = %s AND tenant = %s AND mode = %s "
        "AND id = ANY(%s)",
        (set_id, tenant, mode, list(dict.fromkeys(records.ids))),
        binary=True,  # vectors read in their binary form: parsing their text is a thousand times slower
    ).fetchall()
    # pgvector reads a binary vector as its ``Vector`` (float32 inside); numpy compares its array.
    stored = {rid: (uri, np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v)) for rid, uri, v in found}

    def same(rid: str, i: int) -> bool | None:
        have = stored.get(rid)
        if have is None:
            return None
        return have[0] == records.input_uris[i] and np.array_equal(have[1], records.vectors[i])

    keep, conflicts, _ = sort_repeats(records, same)
    if keep:
        # No ON CONFLICT: the set's row lock makes this the only writer of the partition, so a clash would be a bug
        # to raise (and roll back), never rows to drop silently and leave a gap in the row numbers.
        conn.execute(_INSERT_ARRAYS, [tenant, set_id, mode, header.batch_id, *_columns(records, keep, count)])
    return len(keep), tuple(conflicts)


def _columns(records: Records, keep: list[int], first: int) -> list[list[Any]]:
    """The arrays ``_INSERT_ARRAYS`` unnests: one list per column, in ``_STAGED`` order (rows for ``ord``)."""
    results = records.results
    inferences, labels = records.inferences, records.labels
    answers = [answer_row(results[i] if results else None) for i in keep]
    return [
        list(range(first, first + len(keep))),
        [records.ids[i] for i in keep],
        [records.input_uris[i] for i in keep],
        [None if inferences[i] is None else json_text(inferences[i]) for i in keep],
        [None if labels[i] is None else json_text(labels[i]) for i in keep],
        [float(records.times[i]) for i in keep],
        [records.preview(i) for i in keep],
        list(records.vectors[keep]),
        *(list(column) for column in zip(*answers, strict=True)),
    ]


def _put_staged(
    conn: Any, tenant: str, header: BatchHeader, chunks: Iterable[Records], count: int
) -> tuple[int, int, tuple[str, ...]]:
    """A large batch, or one of several chunks: (received, stored, conflicts) through the staging table."""
    set_id, mode, dim = header.set_id, header.mode, header.dimension
    conn.execute(_STAGING)
    received = 0
    with conn.cursor().copy(f"COPY chroma_staging ({', '.join(_STAGED)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_STAGED_TYPES)
        for records in chunks:
            if records.vectors.shape[1:] != (dim,):
                check_dimension(records.vectors.shape[1], dim, "this batch")
            _copy_rows(copy, records, received)
            received += len(records)
    stored = 0
    if received:
        moved = conn.execute(
            _MOVE,
            {"tenant": tenant, "set": set_id, "mode": mode, "batch": header.batch_id, "base": count},
        )
        stored = max(0, moved.rowcount)
    conflicts: tuple[str, ...] = ()
    if stored < received:  # some were repeats: which of them differ from the record stored for their id?
        found = conn.execute(_CONFLICTS, {"tenant": tenant, "set": set_id, "mode": mode})
        conflicts = tuple(r[0] for r in found)
    return received, stored, conflicts


def _copy_rows(copy: Any, records: Records, first: int) -> None:
    results = records.results
    for i in range(len(records)):
        inferences, label = records.inferences[i], records.labels[i]
        copy.write_row(
            (
                first + i,
                records.ids[i],
                records.input_uris[i],
                None if inferences is None else json_text(inferences),
                None if label is None else json_text(label),
                records.times[i],
                records.preview(i),
                records.vectors[i],
                *answer_row(results[i] if results else None),
            )
        )
