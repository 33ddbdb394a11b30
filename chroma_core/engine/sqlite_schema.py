"""The SQLite store's schema, and the migration of stores written by earlier versions.

Layouts (``PRAGMA user_version``):

- 0, before production results: ``records`` without a ``result`` column (possibly no other table).
- 0, with results: ``records.result`` holds each production answer as JSON text.
- 2, now: the answer as typed columns (:data:`~chroma_core.engine.answers.ANSWER_COLUMNS`) with an index on
  time, and a ``preview`` text per record; ``sets`` carries a ``revision`` (bumped by deletes) and the generation
  of each mode's vector file; ``state`` keeps small JSON values per set.

:func:`migrate` brings any of them to the current layout in one transaction, under the store's write lock, when a
store is opened; a second process that opens the store meanwhile waits, then finds it current.
"""

from __future__ import annotations

import sqlite3

from chroma_core.engine.answers import ANSWER_COLUMNS, answer_row
from chroma_core.json_text import loads
from chroma_core.types import QueryResult

__all__ = ["VERSION", "migrate", "needs_migration"]

VERSION = 2

_SETS = """
CREATE TABLE IF NOT EXISTS sets (
    id TEXT PRIMARY KEY, key_json TEXT NOT NULL, dimension INTEGER NOT NULL, created_at REAL NOT NULL,
    training INTEGER NOT NULL DEFAULT 0, production INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0, training_gen INTEGER NOT NULL DEFAULT 0,
    production_gen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    set_id TEXT NOT NULL, batch_id TEXT NOT NULL, mode TEXT NOT NULL, complete INTEGER NOT NULL,
    stored INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (set_id, batch_id)
);
CREATE TABLE IF NOT EXISTS state (
    set_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (set_id, key)
) WITHOUT ROWID;
"""
_ANSWER_TYPES = ("INTEGER", "INTEGER", "INTEGER", *["REAL"] * 8, "TEXT")
_RECORDS = (
    "CREATE TABLE {name} (set_id TEXT NOT NULL, mode TEXT NOT NULL, id TEXT NOT NULL, row INTEGER NOT NULL, "
    "batch_id TEXT NOT NULL, input_uri TEXT NOT NULL, inferences TEXT, label TEXT, time REAL NOT NULL, preview TEXT, "
    + ", ".join(f"{c} {t}" for c, t in zip(ANSWER_COLUMNS, _ANSWER_TYPES, strict=True))
    + ", PRIMARY KEY (set_id, mode, id)) WITHOUT ROWID"
)
# Time windows are read of production answers only, so training writes do not pay for that index. There is no
# index on input_uri: deletes (rare) scan the records once, so writes (every stored input) stay as fast as before.
_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS records_row ON records (set_id, mode, row);
CREATE INDEX IF NOT EXISTS records_time ON records (set_id, time) WHERE mode = 'production';
"""
_BASE = ("set_id", "mode", "id", "row", "batch_id", "input_uri", "inferences", "label", "time")


def needs_migration(db: sqlite3.Connection) -> bool:
    return int(db.execute("PRAGMA user_version").fetchone()[0]) < VERSION


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to :data:`VERSION`; the caller holds the write lock and an open transaction (DDL in
    SQLite is transactional: a failure rolls the whole migration back)."""
    if not needs_migration(db):
        return
    for statement in _SETS.split(";"):
        if statement.strip():
            db.execute(statement)
    have = _columns(db, "sets")
    for column in ("revision", "training_gen", "production_gen"):
        if column not in have:  # a store of layout 0
            db.execute(f"ALTER TABLE sets ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    old = _columns(db, "records")
    if not old:
        db.execute(_RECORDS.format(name="records"))
    elif "tags" not in old:
        _move_records(db, has_result="result" in old)
    for statement in _INDEXES.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {VERSION}")


def _move_records(db: sqlite3.Connection, *, has_result: bool) -> None:
    """Copy records into the current layout, turning each ``result`` JSON text into typed columns."""
    db.execute("DROP INDEX IF EXISTS records_row")
    db.execute(_RECORDS.format(name="records_new"))
    base = ", ".join(_BASE)
    db.execute(f"INSERT INTO records_new ({base}) SELECT {base} FROM records")  # noqa: S608 - fixed names
    if has_result:
        assign = ", ".join(f"{c} = ?" for c in ANSWER_COLUMNS)
        update = f"UPDATE records_new SET {assign} WHERE set_id = ? AND mode = ? AND id = ?"  # noqa: S608
        rows = db.execute("SELECT set_id, mode, id, input_uri, result FROM records WHERE result IS NOT NULL").fetchall()
        for start in range(0, len(rows), 5000):
            db.executemany(
                update,
                (
                    (*answer_row(QueryResult.from_dict({**loads(text), "input_uri": uri, "set_id": s})), s, m, i)
                    for s, m, i, uri, text in rows[start : start + 5000]
                ),
            )
    db.execute("DROP TABLE records")
    db.execute("ALTER TABLE records_new RENAME TO records")
