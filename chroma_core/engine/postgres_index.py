"""The PostgreSQL store's nearest-neighbour index: one pgvector HNSW index per set's training rows.

A set gets its index once it holds ``ann_threshold`` training rows, built with ``CREATE INDEX CONCURRENTLY`` in a
background thread after the bulk ingest that crossed the threshold (building over the rows already there is many
times faster than inserting them one by one into a live index, and concurrently it blocks no ingest or query).
From then on PostgreSQL keeps it current as rows are added or deleted, so it always covers every training row;
a replica that did not build it finds it in the catalog. ``ANALYZE`` follows large ingests, or the planner, which
still believes the table is small, scans instead of using the index.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from chroma_core.engine.postgres_schema import index_name, vector_cast

if TYPE_CHECKING:
    from chroma_core.engine.postgres_pool import Database

__all__ = ["Indexes"]

logger = logging.getLogger("chroma.engine")


class Indexes:
    """Which sets of one tenant have a ready index, and the threads building the others."""

    def __init__(self, db: Database, tenant: str, threshold: int | None, halfvec: bool) -> None:
        self.db, self.tenant, self.threshold, self.halfvec = db, tenant, threshold, halfvec
        self._ready: set[str] = set()
        self._builds: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = False

    def name(self, set_id: str) -> str:
        return index_name(self.tenant, set_id)

    def is_ready(self, conn: Any, set_id: str) -> bool:
        """Whether the set's index exists and is valid (a concurrent build leaves it invalid until it is done)."""
        if set_id in self._ready:
            return True
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s",
            (self.name(set_id),),
        ).fetchone()
        if row is not None and row[0]:
            with self._lock:
                self._ready.add(set_id)
            return True
        return False

    def wanted(self, training: int) -> bool:
        return self.threshold is not None and training >= self.threshold

    def forget(self, set_id: str) -> None:
        with self._lock:
            self._ready.discard(set_id)

    def drop(self, conn: Any, set_id: str) -> None:
        """Drop the set's index inside the caller's transaction (its cast names the set's dimension, so a set made
        anew with another dimension must not find it)."""
        self.forget(set_id)
        conn.execute(f'DROP INDEX IF EXISTS "{self.name(set_id)}"')

    def build_soon(self, set_id: str, dimension: int) -> None:
        """Start building the set's index in the background unless it is ready or being built."""
        with self._lock:
            if self._closed or set_id in self._ready:
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
        expression, ops = vector_cast(dimension, self.halfvec)
        name = self.name(set_id)
        started = time.monotonic()
        try:
            with self.db.pool.connection() as conn:
                conn.autocommit = True  # CONCURRENTLY cannot run inside a transaction
                try:
                    conn.execute("SET maintenance_work_mem = '512MB'")
                    conn.execute(
                        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON chroma_records USING hnsw '
                        f"({expression} {ops}) WITH (m = 16, ef_construction = 64) "
                        "WHERE tenant = {} AND set_id = {} AND mode = 'training'".format(
                            _literal(self.tenant), _literal(set_id)
                        )
                    )
                    conn.execute("ANALYZE chroma_records")
                    valid = self.is_ready(conn, set_id)
                finally:
                    conn.execute("RESET maintenance_work_mem")
                    conn.autocommit = False
            logger.info(
                "index of set %s %s in %.1fs",
                set_id[:12],
                "built" if valid else "is being built by another replica",
                time.monotonic() - started,
            )
        except Exception as exc:  # a failed build costs speed, never an answer: queries search exactly
            logger.warning("building the index of set %s failed: %s", set_id[:12], str(exc).splitlines()[0])

    def wait(self, set_id: str, timeout: float | None = None) -> bool:
        """Wait for a build of the set's index under way here; True if the index is ready."""
        with self._lock:
            thread = self._builds.get(set_id)
        if thread is not None:
            thread.join(timeout)
        return set_id in self._ready

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._builds.values())
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _literal(text: str) -> str:
    # DDL takes no parameters; the predicate's values are quoted as SQL string literals (doubling quotes).
    return "'" + text.replace("'", "''") + "'"
