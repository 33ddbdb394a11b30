"""Durable storage of embedding sets behind a narrow interface.

``SQLiteStore`` (the embedded default) keeps metadata and records in one SQLite database (WAL mode) and each
(set, mode) partition's vectors in an append-only little-endian float32 file, ``sets/<set_id>/<mode>.f32``.
SQLite is the source of truth for how many rows exist: vectors are appended and fsynced *before* the transaction
that references them commits, and a tail of unreferenced rows left by a crash is cut off by the next write. So a
crash loses at most the batch being written, and never leaves rows that point at missing vectors.

Writes are serialised by a thread lock and an ``flock`` on ``write.lock``, so several processes (an application
and a CLI upload) can share one persist directory. Record ids are unique per (set, mode): writing a record twice
stores it once, which is what makes uploads idempotent and retries safe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chroma_core.errors import StorageError
from chroma_core.json_text import json_text
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.types import SetInfo
from chroma_core.vectors import Matrix, check_dimension

try:  # POSIX only; elsewhere a single process is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["PutResult", "SQLiteStore", "Store", "StoredRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sets (
    id TEXT PRIMARY KEY, key_json TEXT NOT NULL, dimension INTEGER NOT NULL, created_at REAL NOT NULL,
    training INTEGER NOT NULL DEFAULT 0, production INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    set_id TEXT NOT NULL, batch_id TEXT NOT NULL, mode TEXT NOT NULL, complete INTEGER NOT NULL,
    stored INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (set_id, batch_id)
);
CREATE TABLE IF NOT EXISTS records (
    set_id TEXT NOT NULL, mode TEXT NOT NULL, id TEXT NOT NULL, row INTEGER NOT NULL, batch_id TEXT NOT NULL,
    input_uri TEXT NOT NULL, inferences TEXT, label TEXT, time REAL NOT NULL, result TEXT,
    PRIMARY KEY (set_id, mode, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS records_row ON records (set_id, mode, row);
"""


@dataclasses.dataclass(frozen=True)
class PutResult:
    received: int
    stored: int
    duplicates: int
    batch_already_complete: bool = False


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    row: int
    id: str
    input_uri: str
    inferences: Any
    label: Any
    time: float
    result: Any = None  # the answer Chroma gave for a production input, as QueryResult.to_dict()


class Store(Protocol):
    def put(self, header: BatchHeader, records: Records, *, complete: bool) -> PutResult: ...
    def put_chunks(
        self, header: BatchHeader, chunks: Iterable[Records], *, complete: Callable[[], bool]
    ) -> PutResult: ...
    def create_set(self, header: BatchHeader) -> SetInfo: ...
    def get_set(self, set_id: str) -> SetInfo | None: ...
    def list_sets(self) -> list[SetInfo]: ...
    def vectors(self, set_id: str, mode: Mode, start: int = 0) -> Matrix: ...
    def records(self, set_id: str, mode: Mode, rows: Sequence[int]) -> list[StoredRecord]: ...
    def record_range(self, set_id: str, mode: Mode, start: int, stop: int) -> list[StoredRecord]: ...
    def column(self, set_id: str, mode: Mode, name: str, start: int = 0) -> list[Any]: ...
    def vector_path(self, set_id: str, mode: Mode) -> Path: ...
    def memmap(self, set_id: str, mode: Mode, count: int, dimension: int) -> np.ndarray: ...
    def close(self) -> None: ...


class SQLiteStore:
    """The embedded store: SQLite for records, float32 files for vectors (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            (self.directory / "sets").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the persist directory {str(self.directory)!r} ({exc}); "
                "set persist_directory to a writable folder."
            ) from None
        self._lock = threading.RLock()
        self._local = threading.local()
        self._lock_path = self.directory / "write.lock"
        with self._connection() as db:
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
            if "result" not in columns:  # a store written before production results were kept
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    db.execute("ALTER TABLE records ADD COLUMN result TEXT")

    # SQLite connections must not cross threads; each thread gets its own.
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                db = sqlite3.connect(self.directory / "chroma.sqlite3", timeout=60, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {str(self.directory / 'chroma.sqlite3')!r}: {exc}") from None
            self._local.db = db
            self._local.pid = os.getpid()
        return db

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._db()
        except sqlite3.Error as exc:
            raise StorageError(f"the Chroma store at {str(self.directory)!r} failed: {exc}") from exc

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with self._lock:
            handle = open(self._lock_path, "a+b")  # noqa: SIM115
            try:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                yield
            finally:
                handle.close()  # closing releases the flock

    def _vector_path(self, set_id: str, mode: str) -> Path:
        return self.directory / "sets" / set_id / f"{mode}.f32"

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def put(self, header: BatchHeader, records: Records, *, complete: bool) -> PutResult:
        """Store records idempotently; ``complete`` marks the batch as whole, so a re-upload is skipped."""
        return self.put_chunks(header, [records], complete=lambda: complete)

    def put_chunks(self, header: BatchHeader, chunks: Iterable[Records], *, complete: Callable[[], bool]) -> PutResult:
        """Store a stream of chunks of one batch in **one** transaction: all of it is stored, or none.

        ``complete`` is asked once the chunks are exhausted (a reader knows only then whether the file was whole).
        """
        with self._write_lock(), self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = self._put_locked(db, header, chunks, complete)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

    def _put_locked(
        self, db: sqlite3.Connection, header: BatchHeader, chunks: Iterable[Records], complete: Callable[[], bool]
    ) -> PutResult:
        set_id, mode, dim = header.set_id, header.mode, header.dimension
        count = self._ensure_set(db, header)
        done = db.execute(
            "SELECT complete FROM batches WHERE set_id=? AND batch_id=?", (set_id, header.batch_id)
        ).fetchone()
        if done is not None and done[0]:
            received = sum(len(c) for c in chunks)
            return PutResult(received, 0, received, batch_already_complete=True)
        path = self._vector_path(set_id, mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        received = stored = 0
        seen: set[str] = set()
        with open(path, "ab") as f:
            f.truncate(count * dim * 4)  # cut rows a crash left unreferenced
            for records in chunks:
                if records.vectors.shape[1:] != (dim,):
                    check_dimension(records.vectors.shape[1], dim, "this batch")
                received += len(records)
                keep = self._new_rows(db, set_id, mode, records.ids, seen)
                if not keep:
                    continue
                f.write(np.ascontiguousarray(records.vectors[keep], dtype="<f4").tobytes())
                db.executemany(
                    "INSERT INTO records (set_id, mode, id, row, batch_id, input_uri, inferences, label, time, result) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        (
                            set_id,
                            mode,
                            records.ids[i],
                            count + stored + j,
                            header.batch_id,
                            records.input_uris[i],
                            None if records.inferences[i] is None else json_text(records.inferences[i]),
                            None if records.labels[i] is None else json_text(records.labels[i]),
                            records.times[i],
                            None if records.result(i) is None else json_text(records.result(i).stored()),  # type: ignore[union-attr]
                        )
                        for j, i in enumerate(keep)
                    ),
                )
                stored += len(keep)
            # Vectors reach the disk before the transaction that references them commits.
            f.flush()
            os.fsync(f.fileno())
        if stored:
            column = "training" if mode == "training" else "production"
            db.execute(f"UPDATE sets SET {column} = {column} + ? WHERE id=?", (stored, set_id))  # noqa: S608
        db.execute(
            "INSERT INTO batches (set_id, batch_id, mode, complete, stored, updated_at) "
            "VALUES (?,?,?,?,?,strftime('%s','now')) ON CONFLICT (set_id, batch_id) DO UPDATE SET "
            "complete = max(complete, excluded.complete), stored = stored + excluded.stored, "
            "updated_at = excluded.updated_at",
            (set_id, header.batch_id, mode, int(complete()), stored),
        )
        return PutResult(received, stored, received - stored)

    def _ensure_set(self, db: sqlite3.Connection, header: BatchHeader) -> int:
        """Create the set if new (or check its dimension); return the mode's committed row count."""
        row = db.execute("SELECT dimension, training, production FROM sets WHERE id=?", (header.set_id,)).fetchone()
        if row is None:
            key_json = json.dumps(dict(header.embedding_set.key), sort_keys=True, ensure_ascii=False)
            db.execute(
                "INSERT INTO sets (id, key_json, dimension, created_at) VALUES (?,?,?,strftime('%s','now'))",
                (header.set_id, key_json, header.dimension),
            )
            return 0
        check_dimension(header.dimension, row[0], f"batch {header.batch_id!r}")
        return int(row[1] if header.mode == "training" else row[2])

    def _new_rows(self, db: sqlite3.Connection, set_id: str, mode: str, ids: list[str], seen: set[str]) -> list[int]:
        """Indexes of ``ids`` not yet stored (nor repeated earlier in this batch)."""
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            q = f"SELECT id FROM records WHERE set_id=? AND mode=? AND id IN ({marks})"  # noqa: S608 - only '?'s
            existing.update(r[0] for r in db.execute(q, (set_id, mode, *part)))
        keep = []
        for i, rid in enumerate(ids):
            if rid not in existing and rid not in seen:
                seen.add(rid)
                keep.append(i)
        return keep

    def create_set(self, header: BatchHeader) -> SetInfo:
        """Register a set (idempotent); its dimension is fixed from then on."""
        with self._write_lock(), self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._ensure_set(db, header)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        info = self.get_set(header.set_id)
        assert info is not None
        return info

    def _info(self, row: tuple[Any, ...]) -> SetInfo:
        return SetInfo(
            id=row[0],
            embedding_set=json.loads(row[1]),
            dimension=row[2],
            created_at=row[3],
            training=row[4],
            production=row[5],
        )

    def get_set(self, set_id: str) -> SetInfo | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT id, key_json, dimension, created_at, training, production FROM sets WHERE id=?", (set_id,)
            ).fetchone()
        return None if row is None else self._info(row)

    def list_sets(self) -> list[SetInfo]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT id, key_json, dimension, created_at, training, production FROM sets ORDER BY created_at, id"
            ).fetchall()
        return [self._info(r) for r in rows]

    def vectors(self, set_id: str, mode: Mode, start: int = 0) -> Matrix:
        info = self.get_set(set_id)
        if info is None:
            return np.empty((0, 0), dtype=np.float32)
        count = info.training if mode == "training" else info.production
        if start >= count:
            return np.empty((0, info.dimension), dtype=np.float32)
        path = self._vector_path(set_id, mode)
        try:
            with open(path, "rb") as f:
                f.seek(start * info.dimension * 4)
                data = np.fromfile(f, dtype="<f4", count=(count - start) * info.dimension)
        except OSError as exc:
            raise StorageError(f"cannot read vectors of set {set_id!r} from {str(path)!r}: {exc}") from None
        if data.size != (count - start) * info.dimension:
            raise StorageError(
                f"{str(path)!r} holds fewer vectors than the database records ({data.size // info.dimension} < "
                f"{count - start}); the persist directory was modified outside Chroma."
            )
        return data.reshape(count - start, info.dimension).astype(np.float32, copy=False)

    def vector_path(self, set_id: str, mode: Mode) -> Path:
        return self._vector_path(set_id, mode)

    def memmap(self, set_id: str, mode: Mode, count: int, dimension: int) -> np.ndarray:
        """The first ``count`` stored vectors, memory-mapped read-only (pages come from the OS cache)."""
        return np.memmap(self._vector_path(set_id, mode), dtype="<f4", mode="r", shape=(count, dimension))

    def records(self, set_id: str, mode: Mode, rows: Sequence[int]) -> list[StoredRecord]:
        rows = [int(r) for r in rows]
        if not rows:
            return []
        with self._connection() as db:
            marks = ",".join("?" * len(rows))
            columns = "row, id, input_uri, inferences, label, time, result"
            q = f"SELECT {columns} FROM records WHERE set_id=? AND mode=? AND row IN ({marks})"  # noqa: S608
            found = {r[0]: r for r in db.execute(q, (set_id, mode, *rows))}
        return [_stored(found[r]) for r in rows]

    def record_range(self, set_id: str, mode: Mode, start: int, stop: int) -> list[StoredRecord]:
        """Rows ``start`` to ``stop - 1``, in row order."""
        with self._connection() as db:
            found = db.execute(
                "SELECT row, id, input_uri, inferences, label, time, result FROM records "
                "WHERE set_id=? AND mode=? AND row>=? AND row<? ORDER BY row",
                (set_id, mode, start, stop),
            ).fetchall()
        return [_stored(r) for r in found]

    def column(self, set_id: str, mode: Mode, name: str, start: int = 0) -> list[Any]:
        """One column (``input_uri``, ``time``, or JSON ``inferences``, ``label``, ``result``) for rows ``start..``."""
        if name not in ("inferences", "label", "input_uri", "result", "time"):
            raise ValueError(name)
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {name} FROM records WHERE set_id=? AND mode=? AND row>=? ORDER BY row",  # noqa: S608 - name is checked
                (set_id, mode, start),
            ).fetchall()
        if name in ("input_uri", "time"):
            return [r[0] for r in rows]
        return [None if r[0] is None else json.loads(r[0]) for r in rows]


def _stored(rec: Sequence[Any]) -> StoredRecord:
    return StoredRecord(
        row=rec[0],
        id=rec[1],
        input_uri=rec[2],
        inferences=None if rec[3] is None else json.loads(rec[3]),
        label=None if rec[4] is None else json.loads(rec[4]),
        time=rec[5],
        result=None if rec[6] is None else json.loads(rec[6]),
    )
