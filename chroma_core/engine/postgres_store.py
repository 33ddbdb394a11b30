"""The PostgreSQL + pgvector store: any number of service replicas over one database (the ``[postgres]`` extra).

One :class:`PostgresStore` serves one application (``tenant``) of a database; stores of one URL share a connection
pool (:mod:`~chroma_core.engine.postgres_pool`). Every transaction names its tenant (``chroma.tenant``), which the
tables' row-level security policies check (:mod:`~chroma_core.engine.postgres_schema`).

- **Writes** lock the set's row and run in one transaction, idempotently by batch id and record id, conflicts
  reported (:mod:`~chroma_core.engine.postgres_ingest`): a batch sent twice, or by two replicas at once, is
  stored once.
- **Reads** of vectors are binary ``COPY`` parsed by numpy (:mod:`~chroma_core.engine.postgres_copy`).
- **Nearest neighbours** come from the set's HNSW index (:mod:`~chroma_core.engine.postgres_index`), which covers
  the training rows that were there when it was built; the engine searches the newer ones exactly and re-ranks
  the index's candidates exactly, with the vectors sent beside them. All the query vectors of a call go in one
  statement, and a query through the engine is one transaction (:meth:`PostgresStore.one_transaction`, see
  docs/scale-out.md).
- **Deletes** renumber the rows after the deleted ones (:mod:`~chroma_core.engine.postgres_delete`).
- **State** (the calibration, per set revision) lives in the database, so every replica gives the same answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import postgres_delete
from chroma_core.engine import postgres_holes as holes
from chroma_core.engine import postgres_ingest as ingest
from chroma_core.engine.answers import ANSWER_COLUMNS, Answers
from chroma_core.engine.postgres_copy import parse_vectors
from chroma_core.engine.postgres_index import Indexes, nearest_query
from chroma_core.engine.postgres_pool import Database, open_database, release
from chroma_core.engine.record_rows import stored_record
from chroma_core.engine.store import Candidates, DeleteReport, PutResult, StoredRecord
from chroma_core.json_text import json_text, loads
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.types import SetInfo
from chroma_core.vectors import Matrix

__all__ = ["PostgresStore"]

logger = logging.getLogger("chroma.engine")

#: Ingests of at least this many records are followed by ANALYZE (the planner must learn the table grew).
ANALYZE_AFTER = 10_000

#: The least ``hnsw.ef_search`` of a search; more for searches of over half as many rows. pgvector's default, 40, gave
#: recall@10 0.900 at 200k x 384 (m=16, ef_construction=64); 100 gave 0.982 (SQLite's usearch: 0.994), p50 +15-40%.
_EF_MIN = 100

_SET_COLUMNS = "set_id, key_json, dimension, created_at, training, production, revision"
_HOLES = "training_holes, production_holes"  # see postgres_holes: rows over slots
_BASE = "row, id, input_uri, inferences, label, time, preview"
_RECORD = f"{_BASE}, {', '.join(ANSWER_COLUMNS)}"
_WHERE = "set_id = %s AND tenant = %s AND mode = %s"  # the key's leading columns, in order


class PostgresStore:
    """A :class:`~chroma_core.engine.store.Store` in PostgreSQL (see the module docstring).

    ``tenant``: the application whose rows this store reads and writes. ``ann_threshold``: sets with at least this
    many training rows get an HNSW index (``None``: never). ``halfvec``: index half-precision vectors (half the
    index's memory; the stored vectors, and so every score, stay float32). ``small_batch``: batches of one chunk of
    at most this many records skip the staging table (0: none do). ``holes_at_most``: how many deleted rows a
    partition keeps as holes before a delete renumbers it (:mod:`~chroma_core.engine.postgres_holes`; 0: every
    delete renumbers, as before).
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "default",
        ann_threshold: int | None = 20_000,
        halfvec: bool = False,
        small_batch: int = ingest.SMALL_BATCH,
        holes_at_most: int = holes.HOLES_AT_MOST,
    ) -> None:
        self.db: Database = open_database(url)
        self.tenant = tenant
        self.small_batch = small_batch
        self.holes_at_most = holes_at_most
        self.indexes = Indexes(self.db, tenant, ann_threshold, halfvec)
        self._closed = False
        self._reading = threading.local()  # the thread's open one_transaction(), if any

    def __repr__(self) -> str:
        return f"PostgresStore({self.db.shown!r}, tenant={self.tenant!r})"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on a pooled connection, as this tenant (committed on success, else rolled back); the
        store's writes and its helper modules' (:mod:`~chroma_core.engine.postgres_delete`) run in these."""
        with self.db.errors("use"), self.db.pool.connection() as conn, conn.transaction():
            # The search breadth's default with the tenant: a search of few neighbours then needs no statement.
            conn.execute(
                "SELECT set_config('chroma.tenant', %s, true), set_config('hnsw.ef_search', %s, true)",
                (self.tenant, str(_EF_MIN)),
            )
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        """A transaction for reading: the calling thread's :meth:`one_transaction` if one is open, else its own."""
        reading = self._reading
        conn = getattr(reading, "conn", None)
        if conn is None and getattr(reading, "stack", None) is not None:  # the first read of one_transaction()
            conn = reading.conn = reading.stack.enter_context(self.transaction())
        if conn is not None:
            yield conn
            return
        with self.transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def one_transaction(self) -> Iterator[None]:
        """Run every read of the calling thread in one transaction, on one pooled connection, until the block
        ends: the engine wraps each query in it, so that the set's revision check and the search share BEGIN,
        tenant and COMMIT (5 round trips a query instead of 18). The connection is taken at the first read, so a
        query waiting for a lock of the engine's holds none. Writes (kept state, ingest) keep their own
        transactions, so a write that fails cannot abort the reads'. Nested blocks join the outer one."""
        if getattr(self._reading, "stack", None) is not None:
            yield
            return
        with contextlib.ExitStack() as stack:  # closes the transaction: COMMIT, or ROLLBACK on an exception
            self._reading.stack, self._reading.conn, self._reading.sets = stack, None, {}
            try:
                yield
            finally:
                self._reading.stack = self._reading.conn = self._reading.sets = None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.indexes.close()
            release(self.db)

    # ---- sets --------------------------------------------------------------------------------------------------

    @staticmethod
    def _info(row: Sequence[Any]) -> SetInfo:
        return SetInfo(row[0], json.loads(row[1]), row[2], row[4], row[5], row[3], row[6])

    def get_set(self, set_id: str) -> SetInfo | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_SET_COLUMNS}, {_HOLES} FROM chroma_sets WHERE set_id = %s AND tenant = %s",  # noqa: S608
                (set_id, self.tenant),
            ).fetchone()
        info = None if row is None else self._info(row)
        seen = getattr(self._reading, "sets", None)
        if seen is not None and info is not None:  # the other reads of the same transaction need not read it again
            seen[set_id] = (info.dimension, info.training, holes.holes_of(row[7]), holes.holes_of(row[8]))
        return info

    def list_sets(self) -> list[SetInfo]:
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_SET_COLUMNS} FROM chroma_sets WHERE tenant = %s ORDER BY created_at, set_id",  # noqa: S608
                (self.tenant,),
            ).fetchall()
        return [self._info(r) for r in rows]

    def create_set(self, embedding_set: EmbeddingSet, dimension: int) -> SetInfo:
        with self.transaction() as conn:
            ingest.lock_set(conn, self.tenant, embedding_set, dimension, "this embedding set")
        info = self.get_set(embedding_set.id)
        assert info is not None
        return info

    def delete_set(self, set_id: str) -> bool:
        self.indexes.drop_concurrently(set_id, "its set is deleted")  # not under the table lock of a plain DROP
        with self.transaction() as conn:
            found = conn.execute(
                "SELECT 1 FROM chroma_sets WHERE set_id = %s AND tenant = %s FOR UPDATE", (set_id, self.tenant)
            ).fetchone()
            if found is None:
                return False
            self.indexes.drop(conn, set_id)
            for table in ("chroma_records", "chroma_batches", "chroma_state", "chroma_sets"):
                conn.execute(f"DELETE FROM {table} WHERE set_id = %s AND tenant = %s", (set_id, self.tenant))  # noqa: S608
        return True

    # ---- writing -----------------------------------------------------------------------------------------------

    def put(self, header: BatchHeader, chunks: Iterable[Records], *, complete: Callable[[], bool]) -> PutResult:
        """Store the chunks of one batch in one transaction: all of it, or none (see the module docstring)."""
        with self.transaction() as conn:
            result, total = ingest.put(conn, self.tenant, header, chunks, complete, small=self.small_batch)
            stale = (
                header.mode == "training"
                and result.stored > 0
                and self.indexes.stale(total, self.indexes.covering(conn, header.set_id))
            )
        if result.stored >= ANALYZE_AFTER:
            with self.db.errors("analyze"), self.db.pool.connection() as conn:
                conn.execute("ANALYZE chroma_records")
        if stale:
            self.indexes.build_soon(header.set_id, header.dimension)
        return result

    # ---- reading by row ----------------------------------------------------------------------------------------

    def _set(self, conn: Any, set_id: str) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        """(dimension, training rows, training holes, production holes), read once per :meth:`one_transaction`."""
        seen = getattr(self._reading, "sets", None)
        if seen is not None and set_id in seen:
            return seen[set_id]  # type: ignore[no-any-return]
        row = conn.execute(
            f"SELECT dimension, training, {_HOLES} FROM chroma_sets WHERE set_id = %s AND tenant = %s",  # noqa: S608
            (set_id, self.tenant),
        ).fetchone()
        if row is None:
            return None
        found = (int(row[0]), int(row[1]), holes.holes_of(row[2]), holes.holes_of(row[3]))
        if seen is not None:
            seen[set_id] = found
        return found

    def _holes(self, conn: Any, set_id: str, mode: Mode) -> np.ndarray:
        found = self._set(conn, set_id)
        return holes.NONE if found is None else _gaps(found, mode)

    def _copy_vectors(self, conn: Any, where: str, params: Sequence[Any], dim: int, with_rows: bool) -> Any:
        select = ("row, " if with_rows else "") + "embedding"
        query = f"COPY (SELECT {select} FROM chroma_records WHERE {where} ORDER BY row) TO STDOUT (FORMAT BINARY)"  # noqa: S608
        with conn.cursor().copy(query, params) as copy:
            data = b"".join(bytes(block) for block in copy)
        return parse_vectors(data, dim, with_rows=with_rows)

    def vectors(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> Matrix:
        with self._read() as conn:
            found = self._set(conn, set_id)
            if found is None:
                return np.empty((0, 0), dtype=np.float32)
            dim, gaps = found[0], _gaps(found, mode)
            if stop is not None and stop <= start:
                return np.empty((0, dim), dtype=np.float32)
            where = f"{_WHERE} AND row >= %s AND row < %s"
            first, last = holes.slot_of(start, gaps), 2**62 if stop is None else holes.slot_of(stop, gaps)
            params = (set_id, self.tenant, mode, first, last)
            _, vectors = self._copy_vectors(conn, where, params, dim, False)
        return vectors  # type: ignore[no-any-return]

    def vectors_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> Matrix:
        wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
        with self._read() as conn:
            known = self._set(conn, set_id)
            if known is None:
                if len(wanted):
                    raise IndexError(f"set {set_id!r} has no {mode} row {int(wanted[0])}")
                return np.empty((0, 0), dtype=np.float32)
            dim, gaps = known[0], _gaps(known, mode)
            slots = holes.slots_of(wanted, gaps)
            unique = np.unique(slots)
            found, vectors = self._copy_vectors(
                conn, f"{_WHERE} AND row = ANY(%s)", (set_id, self.tenant, mode, unique.tolist()), dim, True
            )
        if len(found) != len(unique) or (len(wanted) and wanted.min() < 0):
            missing = sorted(set(wanted.tolist()) - set(holes.rows_of(found, gaps).tolist()))
            raise IndexError(f"set {set_id!r} has no {mode} row {missing[0]}")
        # ``found`` is sorted like ``unique`` (ORDER BY row), so each wanted slot's place is a binary search.
        return vectors[np.searchsorted(found, slots)]  # type: ignore[no-any-return]

    def records(self, set_id: str, mode: Mode, start: int = 0, stop: int | None = None) -> list[StoredRecord]:
        columns = _RECORD if mode == "production" else _BASE  # training rows carry no answer
        with self._read() as conn:
            gaps = self._holes(conn, set_id, mode)
            last = 2**62 if stop is None else holes.slot_of(stop, gaps)
            found = conn.execute(
                f"SELECT {columns} FROM chroma_records WHERE {_WHERE} AND row >= %s AND row < %s ORDER BY row",  # noqa: S608
                (set_id, self.tenant, mode, holes.slot_of(start, gaps), last),
            ).fetchall()
        rows = holes.rows_of(np.fromiter((r[0] for r in found), np.int64, len(found)), gaps).tolist()
        return [stored_record((row, *r[1:]), set_id) for row, r in zip(rows, found, strict=True)]

    def records_at(self, set_id: str, mode: Mode, rows: Sequence[int] | np.ndarray) -> list[StoredRecord]:
        wanted = [int(r) for r in rows]
        with self._read() as conn:
            gaps = self._holes(conn, set_id, mode)
            slots = holes.slots_of(np.asarray(wanted, dtype=np.int64), gaps).tolist()
            found = {
                r[0]: r
                for r in conn.execute(
                    f"SELECT {_RECORD} FROM chroma_records WHERE {_WHERE} AND row = ANY(%s)",  # noqa: S608
                    (set_id, self.tenant, mode, sorted(set(slots))),
                )
            }
        missing = [r for r, s in zip(wanted, slots, strict=True) if r < 0 or s not in found]
        if missing:
            raise IndexError(f"set {set_id!r} has no {mode} row {missing[0]}")
        return [stored_record((r, *found[s][1:]), set_id) for r, s in zip(wanted, slots, strict=True)]

    def answers(self, set_id: str, *, since: float | None = None, until: float | None = None) -> Answers:
        query = f"SELECT row, time, {', '.join(ANSWER_COLUMNS[:-1])} FROM chroma_records WHERE {_WHERE}"  # noqa: S608
        params: list[Any] = [set_id, self.tenant, "production"]
        for bound, condition in ((since, " AND time >= %s"), (until, " AND time < %s")):
            if bound is not None:
                query += condition
                params.append(float(bound))
        with self._read() as conn:
            gaps = self._holes(conn, set_id, "production")
            rows = conn.execute(query + " ORDER BY row", params).fetchall()
        answers = Answers.from_rows(rows)
        return dataclasses.replace(answers, rows=holes.rows_of(answers.rows, gaps)) if len(gaps) else answers

    # ---- deleting ----------------------------------------------------------------------------------------------

    def delete_records(self, input_uris: Iterable[str], *, set_id: str | None = None) -> DeleteReport:
        return postgres_delete.delete_records(self, input_uris, set_id)

    # ---- nearest neighbours and state --------------------------------------------------------------------------

    def nearest(self, set_id: str, queries: Matrix, k: int) -> Candidates | None:
        """Candidates from the set's index, which covers its first ``covered`` training rows (see
        :mod:`~chroma_core.engine.postgres_index`), with their stored vectors for the caller's exact re-rank.
        All the queries in one statement, in one transaction; the engine needs no second read for its re-rank."""
        with self._read() as conn:
            ef = max(_EF_MIN, min(1000, 2 * int(k)))  # the search's breadth (every transaction starts at _EF_MIN)
            info = self._set(conn, set_id)
            if info is None:
                return None
            if ef != _EF_MIN:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            dim, training, gaps = info[0], info[1], info[2]
            covers = self.indexes.covering(conn, set_id)  # a slot: the index holds the slots below it
            if self.indexes.stale(training + len(gaps), covers):  # e.g. a replica that did not ingest
                self.indexes.build_soon(set_id, dim)
            if covers is None:
                return None
            covered = min(int(holes.rows_of(np.asarray([covers]), gaps)[0]), training)
            if not len(queries) or k <= 0:
                empty = np.empty((len(queries), 0), dtype=np.int64)
                return Candidates(empty, covered, np.empty((len(queries), 0, dim), dtype=np.float32))
            cursor = conn.cursor(binary=True)
            # The vectors as raw bytes, parsed by numpy all at once (pgvector's loader makes an object per row).
            cursor.adapters.register_loader(conn.adapters.types["vector"].oid, self.db.raw_loader)
            cursor.execute(
                nearest_query(dim, self.indexes.halfvec),
                (list(np.asarray(queries, dtype=np.float32)), set_id, self.tenant, covers, int(k)),
            )
            found = cursor.fetchall()
        out = np.full((len(queries), k), -1, dtype=np.int64)
        vectors = np.zeros((len(queries), k, dim), dtype=np.float32)
        if found:
            which = np.fromiter((f[0] for f in found), np.int64, len(found)) - 1
            rows = holes.rows_of(np.fromiter((f[1] for f in found), np.int64, len(found)), gaps)
            distances = np.fromiter((f[2] for f in found), np.float64, len(found))
            order = np.lexsort((distances, which))  # by query, then nearest first
            which, rows = which[order], rows[order]
            rank = np.arange(len(which)) - np.searchsorted(which, which)  # place within its query's run
            out[which, rank] = rows
            # pgvector's binary form: int16 dimension, int16 unused, then big-endian float32s.
            raw = np.frombuffer(b"".join(found[i][3] for i in order), dtype=">f4").reshape(len(found), dim + 1)
            vectors[which, rank] = raw[:, 1:]
        return Candidates(out, covered, vectors)

    def wait_for_index(self, set_id: str, timeout: float | None = None) -> bool:
        """Wait for the set's index build under way in this process; True when the index is ready."""
        return self.indexes.wait(set_id, timeout)

    def read_state(self, set_id: str, key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM chroma_state WHERE set_id = %s AND tenant = %s AND key = %s",
                (set_id, self.tenant, key),
            ).fetchone()
        return None if row is None else dict(loads(row[0]))

    def write_state(self, set_id: str, key: str, value: dict[str, Any]) -> bool:
        """Keep ``value`` (only for a set that exists); False when the database cannot take it now."""
        try:
            with self.transaction() as conn:
                conn.execute("SET LOCAL lock_timeout = '200ms'")  # state is an optimisation: never wait long
                conn.execute(
                    "INSERT INTO chroma_state (tenant, set_id, key, value) SELECT %s, %s, %s, %s WHERE EXISTS ("
                    "SELECT 1 FROM chroma_sets WHERE set_id = %s AND tenant = %s) ON CONFLICT (set_id, tenant, key) "
                    "DO UPDATE SET value = excluded.value",
                    (self.tenant, set_id, key, json_text(value), set_id, self.tenant),
                )
            return True
        except OSError as exc:  # StorageError
            logger.warning("could not keep state %r of set %s: %s", key, set_id[:12], exc)
            return False


def _gaps(found: tuple[int, int, np.ndarray, np.ndarray], mode: Mode) -> np.ndarray:
    return found[2] if mode == "training" else found[3]
