"""Deleting records from the SQLite store: find them by ``input_uri``, then compact each partition they were in.

A partition is compacted the way it is written (see :mod:`chroma_core.engine.sqlite_files`): the kept vectors go to
a new file of the next generation, fsynced before the transaction that deletes the records, renumbers the rows
after them and switches the partition to that file commits. The caller holds the write lock and the transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core.engine import sqlite_files as files

__all__ = ["compact", "in_parts", "rows_of"]

_IN = 500  # values per "IN (...)": under SQLite's bound-parameter limit


def in_parts(values: Sequence[Any]) -> Iterator[tuple[Sequence[Any], str]]:
    """``values`` in slices small enough for one ``IN (...)``, each with its ``?,?,...`` marks."""
    for start in range(0, len(values), _IN):
        part = values[start : start + _IN]
        yield part, ",".join("?" * len(part))


def rows_of(db: sqlite3.Connection, input_uris: Sequence[str], set_id: str | None) -> dict[tuple[str, str], np.ndarray]:
    """(set, mode) -> the sorted rows of records with these uris (in ``set_id`` only, unless None).

    One pass over the records (or over one set's), whatever the number of uris: there is no index on
    ``input_uri``, so that writes, which happen for every stored input, do not pay for one.
    """
    db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (uri TEXT PRIMARY KEY) WITHOUT ROWID")
    db.execute("DELETE FROM doomed")
    db.executemany("INSERT OR IGNORE INTO doomed VALUES (?)", ((uri,) for uri in input_uris))
    q = "SELECT set_id, mode, row FROM records WHERE input_uri IN (SELECT uri FROM doomed)"
    found: dict[tuple[str, str], list[int]] = {}
    for s, m, row in db.execute(q, ()) if set_id is None else db.execute(q + " AND set_id=?", (set_id,)):
        found.setdefault((s, m), []).append(row)
    db.execute("DELETE FROM doomed")
    return {key: np.unique(np.asarray(rows, dtype=np.int64)) for key, rows in sorted(found.items())}


def compact(db: sqlite3.Connection, root: Path, set_id: str, mode: str, gone: np.ndarray) -> None:
    """Drop rows ``gone`` (sorted, non-empty) of one partition: vectors, records, row numbers and count."""
    gen_column = "training_gen" if mode == "training" else "production_gen"
    dim, count, gen = db.execute(
        f"SELECT dimension, {mode}, {gen_column} FROM sets WHERE id=?",  # noqa: S608 - mode is one of two names
        (set_id,),
    ).fetchone()
    old = files.vector_path(root, set_id, mode, gen)
    files.compact(old, files.vector_path(root, set_id, mode, gen + 1), dim, count, gone)
    for rows, marks in in_parts(gone.tolist()):
        q = f"DELETE FROM records WHERE set_id=? AND mode=? AND row IN ({marks})"  # noqa: S608 - only '?'s
        db.execute(q, (set_id, mode, *rows))
    first = int(gone[0])
    # Renumber the rows after the first deleted one, keeping their order: through negative values, so that the
    # unique (set, mode, row) index never sees two records on one row.
    db.execute(
        "UPDATE records SET row = -1 - r.new FROM (SELECT id, ? + ROW_NUMBER() OVER (ORDER BY row) - 1 AS new "
        "FROM records WHERE set_id=? AND mode=? AND row>?) AS r "
        "WHERE records.set_id=? AND records.mode=? AND records.id=r.id",
        (first, set_id, mode, first, set_id, mode),
    )
    db.execute("UPDATE records SET row = -1 - row WHERE set_id=? AND mode=? AND row<0", (set_id, mode))
    db.execute(
        f"UPDATE sets SET {mode} = {mode} - ?, {gen_column} = {gen_column} + 1 WHERE id=?",  # noqa: S608
        (len(gone), set_id),
    )
