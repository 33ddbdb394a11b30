"""The PostgreSQL store's nearest-neighbour index: a pgvector HNSW index over a prefix of each set's training rows.

A set's index is a partial index over its training rows *below a row number* ``C`` fixed when it is built
(``... WHERE tenant = .. AND set_id = .. AND mode = 'training' AND row < C``; ``C`` is in its name). Rows stored
later are not in it, so an ingest never pays for HNSW inserts (at 20k rows one insert cost 10-17 ms, which made
small batches into an indexed set crawl at 68-773 records/s); the engine searches those rows exactly (the
``covered`` of :class:`~chroma_core.engine.store.Candidates`), as it does over the SQLite store's index. When the
rows past ``C`` grow to a quarter of ``C`` (and at least half ``ann_threshold``), a new index over every row is
built with ``CREATE INDEX CONCURRENTLY`` in a background thread, which blocks no ingest or query, and the old one
is dropped once the new one is valid. Deleting records renumbers rows, and PostgreSQL re-files each renumbered row
by its new number, so the index always holds exactly the rows below ``C``.

A build holds a session advisory lock of its set, so replicas never build one set's index twice at once, and an
index left *invalid* by a build that was killed or cancelled (no one holds the lock, ``pg_index.indisvalid`` is
false) is dropped and built again by the next build. ``ANALYZE`` follows each build, or the planner, which still
believes the table is small, scans instead of using the index.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from chroma_core.engine.postgres_schema import index_name, vector_cast
from chroma_core.logs import logger

if TYPE_CHECKING:
    from chroma_core.engine.postgres_pool import Database

__all__ = ["Indexes", "SetIndex", "nearest_query"]

#: How long a replica trusts what it last read of a set's indexes in the catalog (another may build a newer one).
_FRESH_S = 5.0
#: How long to wait before trying to build a set's index again, when another replica holds its build, or after a
#: build failed (queries meanwhile search exactly: slower, never wrong).
_BUSY_RETRY_S = 10.0
_FAILED_RETRY_S = 60.0
#: The advisory lock that lets one index build at a time run over the records table, and how often a build
#: waiting for it tries again.
_BUILDS_KEY = 0x6368726F6D6149  # "chromaI"
_BUILDS_POLL_S = 1.0


class SetIndex(NamedTuple):
    """One of a set's HNSW indexes: its name, the rows it covers (``row < covers``), and whether it is valid."""

    name: str
    covers: int
    valid: bool


class Indexes:
    """The HNSW indexes of one tenant's sets, and the threads building them (see the module docstring)."""

    def __init__(self, db: Database, tenant: str, threshold: int | None, halfvec: bool) -> None:
        self.db, self.tenant, self.threshold, self.halfvec = db, tenant, threshold, halfvec
        self._covers: dict[str, tuple[int | None, float]] = {}  # set -> (rows covered by its valid index, read at)
        self._builds: dict[str, threading.Thread] = {}
        self._not_before: dict[str, float] = {}  # set -> when to try again, after a failed build or a busy lock
        #: A delete that would re-file more indexed rows than this (and than a fifth of them) rebuilds instead.
        self.refile_at_most = 500
        self._lock = threading.Lock()
        self._closed = False

    # ---- what exists -------------------------------------------------------------------------------------------

    def base(self, set_id: str) -> str:
        return index_name(self.tenant, set_id)

    def listed(self, conn: Any, set_id: str) -> list[SetIndex]:
        """The set's indexes in the catalog, valid or not, smallest ``covers`` first.

        An index named without a row bound (made before indexes covered a prefix) is listed as invalid: it holds
        every row, so each insert pays for it; the next build drops it.
        """
        base = self.base(set_id)
        # A range of names (``name`` sorts bytewise) reads pg_class's name index, however many sets there are.
        found = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname >= %s AND c.relname < %s",
            (base, base + "_~"),
        ).fetchall()
        out = [
            SetIndex(name, int(name[len(base) + 1 :]), bool(valid)) if name != base else SetIndex(name, 0, False)
            for name, valid in found
        ]
        return sorted(out, key=lambda i: i.covers)

    def covering(self, conn: Any, set_id: str) -> int | None:
        """How many leading training rows the set's newest valid index covers; None without one."""
        now = time.monotonic()
        with self._lock:
            cached = self._covers.get(set_id)
        if cached is not None and now - cached[1] < _FRESH_S:
            return cached[0]
        valid = [i.covers for i in self.listed(conn, set_id) if i.valid]
        covers = valid[-1] if valid else None
        with self._lock:
            self._covers[set_id] = (covers, now)
        return covers

    def stale(self, training: int, covers: int | None) -> bool:
        """Whether a set of ``training`` rows wants a (new) index, given the rows its current one covers."""
        if self.threshold is None or training < self.threshold:
            return False
        return covers is None or training - covers >= max(self.threshold // 2, covers // 4, 1)

    def forget(self, set_id: str) -> None:
        with self._lock:
            self._covers.pop(set_id, None)

    def cheaper_to_rebuild(self, covers: int, first: int) -> bool:
        """Whether renumbering the rows from ``first`` on would re-file more of the ``covers`` indexed rows than
        rebuilding the index costs (one HNSW insert cost 2-10 ms here; a build, under 1 ms a row)."""
        return covers - first > max(self.refile_at_most, covers // 5)

    def drop_concurrently(self, set_id: str, why: str) -> bool:
        """Drop the set's indexes without locking the table (``DROP INDEX CONCURRENTLY``, outside a transaction),
        unless a build holds them (False). ``why`` ends the log line of a drop."""
        with self.db.errors("drop an index in"), self.db.pool.connection() as conn:
            conn.autocommit = True
            key = _lock_key(self.base(set_id))
            try:
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    return False
                try:
                    dropped = self.listed(conn, set_id)
                    for index in dropped:
                        conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index.name}"')
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            finally:
                conn.autocommit = False
        self.forget(set_id)
        if dropped:
            logger.info("dropped the index of set %s: %s", set_id[:12], why)
        return True

    def drop(self, conn: Any, set_id: str) -> None:
        """Drop the set's indexes inside the caller's transaction (their cast names the set's dimension, so a set
        made anew with another dimension must not find them). A plain DROP INDEX locks the whole table until the
        commit: :meth:`drop_concurrently` first leaves this nothing to drop but a build's late index."""
        self.forget(set_id)
        for index in self.listed(conn, set_id):
            conn.execute(f'DROP INDEX IF EXISTS "{index.name}"')

    # ---- building ----------------------------------------------------------------------------------------------

    def build_soon(self, set_id: str, dimension: int) -> None:
        """Start building the set's index in the background unless a build of it is under way here."""
        with self._lock:
            if self._closed or time.monotonic() < self._not_before.get(set_id, 0.0):
                return
            running = self._builds.get(set_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(
                target=self._build, args=(set_id, dimension), name=f"chroma-pg-index-{set_id[:8]}", daemon=True
            )
            self._builds[set_id] = thread
            thread.start()

    def _build(self, set_id: str, dimension: int) -> None:
        started = time.monotonic()
        try:
            built = None
            while not self._closed:
                with self.db.errors("index a set in"), self.db.pool.connection() as conn:
                    conn.autocommit = True  # CONCURRENTLY cannot run inside a transaction
                    # One build at a time over the records table, whichever set and replica: two CREATE INDEX
                    # CONCURRENTLY on one table wait for each other's snapshots, and PostgreSQL cancels one
                    # ("deadlock detected"), leaving its index invalid (3 of 4 sets' builds, in
                    # bench_postgres_replicas.py --sets 4). A waiting build holds no pooled connection.
                    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_BUILDS_KEY,)).fetchone()[0]:
                        waiting = True
                    else:
                        waiting = False
                        try:
                            key = _lock_key(self.base(set_id))
                            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                                logger.info("the index of set %s is being built by another replica", set_id[:12])
                                self._later(set_id, _BUSY_RETRY_S)
                                return
                            try:
                                built = self._build_locked(conn, set_id, dimension)
                            finally:
                                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                        finally:
                            conn.execute("SELECT pg_advisory_unlock(%s)", (_BUILDS_KEY,))
                if not waiting:
                    break
                time.sleep(_BUILDS_POLL_S)
            if built is not None:
                logger.info(
                    "index of set %s over %d rows built in %.1fs", set_id[:12], built, time.monotonic() - started
                )
        except Exception as exc:  # a failed build costs speed, never an answer: queries search exactly
            logger.warning("building the index of set %s failed: %s", set_id[:12], str(exc).splitlines()[0])
            self._later(set_id, _FAILED_RETRY_S)  # not again at once, or every query would start a failing build
        finally:
            self.forget(set_id)

    def _later(self, set_id: str, seconds: float) -> None:
        with self._lock:
            self._not_before[set_id] = time.monotonic() + seconds

    def _build_locked(self, conn: Any, set_id: str, dimension: int) -> int | None:
        """Under the set's advisory lock: drop what a killed build left, build over every row if the newest valid
        index is stale, then drop the older ones. The number of rows the new index covers, or None."""
        listed = self.listed(conn, set_id)
        for index in listed:
            if not index.valid:  # no build holds the lock, so this one's build died: drop it, build anew
                logger.warning("dropping the invalid index %s of set %s (a build was cut off)", index.name, set_id[:12])
                conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{index.name}"')
        valid = [i for i in listed if i.valid]
        conn.execute("SELECT set_config('chroma.tenant', %s, false)", (self.tenant,))
        try:
            row = conn.execute(
                "SELECT training + cardinality(training_holes) FROM chroma_sets WHERE set_id = %s AND tenant = %s",
                (set_id, self.tenant),
            ).fetchone()
        finally:
            conn.execute("RESET chroma.tenant")
        if row is None or not self.stale(int(row[0]), valid[-1].covers if valid else None):
            return None
        covers = int(row[0])
        expression, ops = vector_cast(dimension, self.halfvec)
        name = f"{self.base(set_id)}_{covers}"
        conn.execute("SET maintenance_work_mem = '512MB'")
        try:
            conn.execute(
                f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON chroma_records USING hnsw '
                f"({expression} {ops}) WITH (m = 16, ef_construction = 64) "
                "WHERE tenant = {} AND set_id = {} AND mode = 'training' AND row < {}".format(
                    _literal(self.tenant), _literal(set_id), covers
                )
            )
        finally:
            conn.execute("RESET maintenance_work_mem")
        conn.execute("ANALYZE chroma_records")
        for old in valid:
            conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{old.name}"')
        return covers

    def wait(self, set_id: str, timeout: float | None = None) -> bool:
        """Wait for a build of the set's index under way here; True if the set has a valid index then."""
        with self._lock:
            thread = self._builds.get(set_id)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
        self.forget(set_id)
        with self.db.errors("use"), self.db.pool.connection() as conn:
            return any(i.valid for i in self.listed(conn, set_id))

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._builds.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _lock_key(name: str) -> int:
    # pg_advisory_lock takes a signed 64-bit key: the first 8 bytes of a digest of the index's base name.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _literal(text: str) -> str:
    # DDL takes no parameters; the predicate's values are quoted as SQL string literals (doubling quotes).
    return "'" + text.replace("'", "''") + "'"


def nearest_query(dim: int, halfvec: bool) -> str:
    """The ``k`` nearest rows of each query, with their distances: a LATERAL join over the unnested queries in
    which each side is an index scan (its ``row < covers`` matches the index's predicate); each row comes with its
    stored float32 vector, for the exact re-rank. Parameters: the
    queries, the set id, the tenant, ``covers`` and ``k``."""
    expression, _ = vector_cast(dim, halfvec)
    distance = f"{expression} <=> q.v::{'halfvec' if halfvec else 'vector'}({dim})"
    where = "set_id = %s AND tenant = %s AND mode = 'training' AND row < %s"
    lateral = f"SELECT row, {distance} AS d, embedding FROM chroma_records WHERE {where}"  # noqa: S608
    lateral += f" ORDER BY {distance} LIMIT %s"
    queries = "unnest(%b::vector[]) WITH ORDINALITY AS q(v, i)"  # binary: the text form is slow to write
    return f"SELECT q.i, n.row, n.d, n.embedding FROM {queries} CROSS JOIN LATERAL ({lateral}) n"  # noqa: S608
