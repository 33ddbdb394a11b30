"""The embedded store: SQLite for sets and records, one float32 file per (set, mode) for vectors.

SQLite (WAL mode) is the source of truth for how many rows a partition has and which vector file holds them:
vectors are appended and fsynced *before* the transaction that references them commits, a tail of unreferenced
rows left by a crash is cut off by the next write, and a delete writes the kept rows to a new file that the
committing transaction switches to (see :mod:`chroma_core.engine.sqlite_files`). So a crash loses at most the write
under way, and never leaves a record without its vector.

Writes are serialised by a thread lock and an ``flock`` on ``write.lock``, so several processes (an application
and a CLI upload) can share one persist directory. The approximate nearest-neighbour index of large sets lives
beside the vectors and is built in the background (:mod:`chroma_core.engine.sqlite_index`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core.atomic import PRIVATE_DIR, private_dir, private_file, tighten
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import sqlite_delete as deleting
from chroma_core.engine import sqlite_files as files
from chroma_core.engine import sqlite_ingest as ingest
from chroma_core.engine.answers import ANSWER_COLUMNS, Answers
from chroma_core.engine.record_rows import stored_record
from chroma_core.engine.sqlite_index import SQLiteIndexes
from chroma_core.engine.sqlite_schema import migrate, needs_migration
from chroma_core.engine.store import Candidates, DeleteReport, PutResult, StoredRecord
from chroma_core.errors import StorageError
from chroma_core.json_text import json_text, loads
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.types import SetInfo
from chroma_core.vectors import Matrix

try:  # POSIX only; elsewhere a single process is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["SQLiteStore"]

_CHECKPOINT_ROWS = 10_000  # rows stored in one batch after which the WAL is folded back and truncated

_SET_COLUMNS = "id, key_json, dimension, created_at, training, production, revision"
_BASE_COLUMNS = "row, id, input_uri, inferences, label, time, preview"
_RECORD_COLUMNS = f"{_BASE_COLUMNS}, {', '.join(ANSWER_COLUMNS)}"
_ANSWERS = f"SELECT row, time, {', '.join(ANSWER_COLUMNS[:-1])} FROM records WHERE set_id=? AND mode='production'"  # noqa: S608


class SQLiteStore:
    """The embedded :class:`~chroma_core.engine.store.Store` (see the module docstring).

    ``ann_threshold``: sets with at least this many training vectors get an approximate index (when usearch is
    installed; ``None`` never). ``index_dtype``: its precision, ``f32``, ``f16``, ``bf16`` or ``i8``; ``auto``: bf16
    where usearch has kernels for it on this CPU, else f16 (:func:`chroma_core.engine.ann.default_dtype`), and an index
    saved before keeps the precision it was saved with.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, ann_threshold: int | None = 20_000, index_dtype: str = "auto"
    ) -> None:
        self.directory = Path(directory)
        try:
            # Private (0700 folders, 0600 files): the store holds embeddings and input uris (docs/security.md).
            if (self.directory / "chroma.sqlite3").exists():  # a store made before this rule: ours to tighten
                tighten(self.directory, PRIVATE_DIR)
            private_dir(private_dir(self.directory) / "sets")
            private_file(self.directory / "chroma.sqlite3")  # SQLite gives its -wal and -shm files this mode
            private_file(self.directory / "write.lock")
        except OSError as exc:
            raise StorageError(
                f"cannot create the persist directory {str(self.directory)!r} ({exc}); "
                "set persist_directory to a writable folder."
            ) from None
        self._lock = threading.RLock()
        self._flocked = False  # whether the thread holding ``_lock`` holds the flock too
        self._local = threading.local()
        self._lock_path = self.directory / "write.lock"
        with self._connection() as db:
            if needs_migration(db):
                with self._transaction() as tx:
                    migrate(tx)
        with self._write_lock(wait=False) as locked:
            if locked:
                self._sweep()
        self.indexes = SQLiteIndexes(self, ann_threshold, index_dtype)
        self._row_maps = files.RowMaps()  # vectors_at is called per query (candidates re-ranked): no map per call

    # ---- connections and locks ---------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        # SQLite connections must not cross threads (or forks); each thread gets its own.
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
    def _write_lock(self, *, wait: bool = True) -> Iterator[bool]:
        """The thread lock and the ``flock`` on ``write.lock``; re-entrant in a thread (a second flock on another
        descriptor of the file would wait for the first). Yields False when ``wait=False`` and another holds it."""
        if not self._lock.acquire(blocking=wait):
            yield False
            return
        try:
            if self._flocked:
                yield True
                return
            with open(self._lock_path, "a+b") as handle:  # closing releases the flock
                got = True
                if fcntl is not None:
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                    except BlockingIOError:
                        got = False
                self._flocked = got
                try:
                    yield got
                finally:
                    self._flocked = False
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the write lock: committed on success, rolled back on any error."""
        with self._write_lock(), self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _sweep(self) -> None:
        """Remove files the database does not name (see :func:`sqlite_files.sweep`); under the write lock."""
        with self._connection() as db:
            current = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, training_gen, production_gen FROM sets")}
        files.sweep(self.directory, current)

    def close(self) -> None:
        self.indexes.close()
        self._row_maps.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- sets --------------------------------------------------------------------------------------------------

    def _info(self, row: Sequence[Any]) -> SetInfo:
        return SetInfo(row[0], json.loads(row[1]), row[2], row[4], row[5], row[3], row[6])

    def get_set(self, set_id: str) -> SetInfo | None:
        with self._connection() as db:
            row = db.execute(f"SELECT {_SET_COLUMNS} FROM sets WHERE id=?", (set_id,)).fetchone()  # noqa: S608
        return None if row is None else self._info(row)

    def list_sets(self) -> list[SetInfo]:
        with self._connection() as db:
            rows = db.execute(f"SELECT {_SET_COLUMNS} FROM sets ORDER BY created_at, id").fetchall()  # noqa: S608
        return [self._info(r) for r in rows]

    def create_set(self, embedding_set: EmbeddingSet, dimension: int) -> SetInfo:
        with self._transaction() as db:
            ingest.ensure_set(db, embedding_set, dimension, "this embedding set")
        info = self.get_set(embedding_set.id)
        assert info is not None
        return info

    def partition(self, set_id: str, mode: Mode) -> tuple[int, int, int, float] | None:
        """(dimension, committed rows, file generation, set created_at) of one (set, mode); None if no set."""
        with self._connection() as db:
            return ingest.partition(db, set_id, mode)

    def delete_set(self, set_id: str) -> bool:
        with self._write_lock():
            with self._transaction() as db:
                if db.execute("SELECT 1 FROM sets WHERE id=?", (set_id,)).fetchone() is None:
                    return False
                # The index goes before the commit: a crash may then cost a rebuild, never serve deleted rows.
                self.indexes.forget(set_id, remove_files=True)
                self._row_maps.forget(set_id)
                for table, column in (
                    ("records", "set_id"),
                    ("batches", "set_id"),
                    ("state", "set_id"),
                    ("sets", "id"),
                ):
                    db.execute(f"DELETE FROM {table} WHERE {column}=?", (set_id,))  # noqa: S608 - fixed names
            self._sweep()  # its folder
        return True

    # ---- writing -----------------------------------------------------------------------------------------------

    def put(self, header: BatchHeader, chunks: Iterable[Records], *, complete: Callable[[], bool]) -> PutResult:
        """Store the chunks of one batch in **one** transaction: all of it is stored, or none."""
        # The first chunk (a whole batch of an upload's usual size) is read and decoded before the write lock is
        # taken: other writers wait for the lock, so nothing that can be done without it is done under it. A
        # batch that cannot be read fails here as it would inside, with nothing stored.
        rest = iter(chunks)
        first = next(rest, None)
        with self._transaction() as db:
            ahead = rest if first is None else itertools.chain((first,), rest)
            result = ingest.put(db, self.directory, header, ahead, complete)
        if result.stored >= _CHECKPOINT_ROWS:  # a large batch leaves its size again in the WAL until a checkpoint
            with self._write_lock(), self._connection() as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if header.mode == "training" and result.stored:
            self.indexes.prepare(header.set_id)  # build while nobody waits: the first query may come much later
        return result

    # ---- reading -----------------------------------------------------------------------------------------------

    def _read(self, set_id: str, mode: Mode, read: Callable[[Path, int, int], Matrix]) -> Matrix:
        for attempt in range(3):  # a delete in another process may switch files between our two reads
            part = self.partition(set_id, mode)
            if part is None:
                return np.empty((0, 0), dtype=np.float32)
            dim, count, gen, _ = part
            path = files.vector_path(self.directory, set_id, mode, gen)
            try:
                return read(path, dim, count)
            except FileNotFoundError:
                if count == 0:
                    return np.empty((0, dim), dtype=np.float32)
                if attempt == 2:
                    raise StorageError(
                        f"the vectors of set {set_id!r} are missing ({str(path)!r}); the persist directory was "
                        "modified outside Chroma."
                    ) from None
            except OSError as exc:
                raise StorageError(f"cannot read vectors of set {set_id!r} from {str(path)!r}: {exc}") from None
        raise AssertionError("unreachable")

    def vectors(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> Matrix:
        def read(path: Path, dim: int, count: int) -> Matrix:
            end = count if stop is None else min(stop, count)
            if start >= end:
                return np.empty((0, dim), dtype=np.float32)
            return files.read_range(path, dim, start, end)

        return self._read(set_id, mode, read)

    def vectors_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> Matrix:
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        key = (set_id, mode)
        return self._read(set_id, mode, lambda path, dim, count: self._row_maps.read(key, path, dim, count, index))

    def records(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> list[StoredRecord]:
        # Training records carry no answer: not reading its columns makes a set's model load a third faster.
        columns = _RECORD_COLUMNS if mode == "production" else _BASE_COLUMNS
        with self._connection() as db:
            found = db.execute(
                f"SELECT {columns} FROM records WHERE set_id=? AND mode=? AND row>=? AND row<? ORDER BY row",  # noqa: S608
                (set_id, mode, start, 2**62 if stop is None else stop),
            ).fetchall()
        return [stored_record(r, set_id) for r in found]

    def records_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> list[StoredRecord]:
        wanted = [int(r) for r in rows]
        found: dict[int, Sequence[Any]] = {}
        with self._connection() as db:
            for part, marks in deleting.in_parts(sorted(set(wanted))):
                q = f"SELECT {_RECORD_COLUMNS} FROM records WHERE set_id=? AND mode=? AND row IN ({marks})"  # noqa: S608
                found.update((r[0], r) for r in db.execute(q, (set_id, mode, *part)))
        missing = [r for r in wanted if r not in found]
        if missing:
            raise IndexError(f"set {set_id!r} has no {mode} row {missing[0]}")
        return [stored_record(found[r], set_id) for r in wanted]

    def answers(self, set_id: str, *, since: float | None = None, until: float | None = None) -> Answers:
        q, args = _ANSWERS, list[object]([set_id])
        for bound, condition in ((since, " AND time >= ?"), (until, " AND time < ?")):
            if bound is not None:
                q += condition
                args.append(float(bound))
        with self._connection() as db:
            rows = db.execute(q + " ORDER BY row", args).fetchall()
        return Answers.from_rows(rows)

    # ---- deleting ----------------------------------------------------------------------------------------------

    def delete_records(self, input_uris: Iterable[str], *, set_id: str | None = None) -> DeleteReport:
        if isinstance(input_uris, str):
            raise TypeError("input_uris must be a list of input_uri values, not one string")
        uris = list(dict.fromkeys(input_uris))
        with self._write_lock():
            with self._transaction() as db:
                gone = deleting.rows_of(db, uris, set_id)
                for (s, mode), rows in gone.items():
                    deleting.compact(db, self.directory, s, mode, rows)
                    if mode == "training":
                        self.indexes.forget(s, remove_files=False)  # its rows are renumbered: a new index is built
                    self._row_maps.forget(s)
                sets = sorted({s for s, _ in gone})
                for s in sets:
                    db.execute("UPDATE sets SET revision = revision + 1 WHERE id=?", (s,))
            self._sweep()  # the old generations' files, now that the database names the new ones
        counts = {mode: sum(len(r) for (_, m), r in gone.items() if m == mode) for mode in ("training", "production")}
        return DeleteReport(counts["training"], counts["production"], tuple(sets))

    # ---- nearest neighbours and state --------------------------------------------------------------------------

    def nearest(self, set_id: str, queries: Matrix, k: int) -> Candidates | None:
        return self.indexes.nearest(set_id, queries, k)

    def wait_for_index(self, set_id: str, timeout: float | None = None) -> bool:
        """Wait until the set's index covers all its training rows (True), or ``timeout`` passes (False)."""
        return self.indexes.wait(set_id, timeout)

    def read_state(self, set_id: str, key: str) -> dict[str, Any] | None:
        with self._connection() as db:
            row = db.execute("SELECT value FROM state WHERE set_id=? AND key=?", (set_id, key)).fetchone()
        return None if row is None else dict(loads(row[0]))

    def write_state(self, set_id: str, key: str, value: dict[str, Any]) -> bool:
        """Keep ``value``; False (nothing written) when another writer holds the database, rather than wait."""
        text = json_text(value)
        with self._connection() as db:  # no write lock: no file is touched, and an ingest may hold it for long
            db.execute("PRAGMA busy_timeout = 50")  # state is an optimisation: never block a query on an ingest
            try:
                db.execute(
                    "INSERT INTO state (set_id, key, value) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM sets WHERE "
                    "id=?) ON CONFLICT (set_id, key) DO UPDATE SET value = excluded.value",
                    (set_id, key, text, set_id),
                )
                return True
            except sqlite3.OperationalError:  # "database is locked"
                return False
            finally:
                db.execute("PRAGMA busy_timeout = 60000")
