"""The SQLite store's approximate nearest-neighbour indexes, built and extended in the background.

A set with at least ``ann_threshold`` training vectors gets a usearch index (:mod:`chroma_core.engine.ann`: its
settings, precision and integrity checks) in a file beside its vectors. The first ``nearest`` call for such a set
starts a background thread that loads the saved index (or builds it, on one core, leaving the other to queries),
then adds any newer rows; until it is ready ``nearest`` answers None, and afterwards it covers the rows indexed so
far, so the engine searches the rest exactly and a query never waits for a build. A delete that renumbers a set's
training rows changes the vector file's generation, which drops the index and builds a new one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chroma_core.atomic import PRIVATE_FILE, tighten
from chroma_core.engine import ann
from chroma_core.engine import sqlite_files as files
from chroma_core.engine.index import normalize
from chroma_core.engine.store import Candidates
from chroma_core.logs import logger
from chroma_core.vectors import Matrix

if TYPE_CHECKING:
    from chroma_core.engine.sqlite_store import SQLiteStore

__all__ = ["SQLiteIndexes", "build_threads"]

_EXTEND_ROWS = 128  # rows added per step to a live index: a query waits for one step at most


def build_threads() -> int:
    """Cores a background index build may use: ``CHROMA_INDEX_THREADS``, else all of them.

    Until the index is ready every query is answered by exact search, and the sooner it is ready the sooner
    queries get cheap, so the build takes every core by default (with the build also starting at store time, a
    100k x 384 set's index was ready after 37.7 s rather than 86.8 s on 2 cores, see docs/benchmarks.md); a
    process that must keep cores for other work sets the variable.
    """
    every = max(1, os.cpu_count() or 1)
    value = os.environ.get("CHROMA_INDEX_THREADS", "").strip()
    if not value:
        return every
    try:
        return max(1, int(value))
    except ValueError:
        logger.warning("CHROMA_INDEX_THREADS=%r is not a number of threads; using every core", value)
        return every


class _Entry:
    """One set's index: ``identity`` (its creation time and training file generation) names the data it covers."""

    def __init__(self, identity: tuple[float, int]) -> None:
        self.identity = identity
        self.index: ann.ANNIndex | None = None
        self.lock = threading.Lock()  # a search and an add never run at once on one usearch index
        self.worker: threading.Thread | None = None
        self.failed = False

    def busy(self) -> bool:
        return self.worker is not None and self.worker.is_alive()


class SQLiteIndexes:
    """The indexes of one :class:`SQLiteStore` (``threshold=None``: no index, every search is the engine's)."""

    def __init__(self, store: SQLiteStore, threshold: int | None, dtype: str) -> None:
        if dtype not in ("auto", *ann.DTYPES):
            raise ValueError(f"index dtype must be auto or one of {', '.join(ann.DTYPES)}, not {dtype!r}")
        self._store = store
        self._threshold = threshold
        self._dtype = dtype
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._closed = False

    def _current(self, set_id: str) -> tuple[int, int, int, float] | None:
        """The training partition, if it is large enough to index (and an index can be built here)."""
        if self._threshold is None or self._closed or not ann.available():
            return None
        part = self._store.partition(set_id, "training")
        return part if part is not None and part[1] >= self._threshold else None

    def _entry(self, set_id: str, part: tuple[int, int, int, float]) -> _Entry:
        """The set's entry for the data now stored, with a worker started if the index lags behind it."""
        identity = (part[3], part[2])
        with self._lock:
            entry = self._entries.get(set_id)
            if entry is None or entry.identity != identity:
                entry = self._entries[set_id] = _Entry(identity)
            lagging = entry.index is None or len(entry.index) < part[1]
            if lagging and not entry.failed and not entry.busy():
                entry.worker = threading.Thread(
                    target=self._work, args=(set_id, entry), name=f"chroma-index-{set_id[:8]}", daemon=True
                )
                entry.worker.start()
            return entry

    def prepare(self, set_id: str) -> None:
        """Start (or extend) the set's index in the background if it is large enough; never waits, never raises."""
        try:
            part = self._current(set_id)
            if part is not None:
                self._entry(set_id, part)
        except Exception as exc:  # the data is stored; the first query starts the build again
            logger.warning("cannot start indexing set %s (%s); its first query will", set_id, exc)

    def nearest(self, set_id: str, queries: Matrix, k: int) -> Candidates | None:
        part = self._current(set_id)
        if part is None:
            return None
        entry = self._entry(set_id, part)
        index = entry.index
        if index is None:
            return None
        with entry.lock:
            covered = len(index)
            if len(queries) and covered and k > 0:
                _, rows = index.search(queries, k)
            else:
                rows = np.empty((len(queries), 0), dtype=np.int64)
        return Candidates(rows, covered)

    def wait(self, set_id: str, timeout: float | None = None) -> bool:
        """Until the set's index covers every training row and is saved (True), or ``timeout`` (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            part = self._current(set_id)
            if part is None:
                return False
            entry = self._entry(set_id, part)
            if entry.index is not None and len(entry.index) >= part[1] and not entry.busy():
                return True
            if entry.failed:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            with self._changed:
                self._changed.wait(0.2 if left is None else min(0.2, left))

    def forget(self, set_id: str, *, remove_files: bool) -> None:
        """Drop the set's index (its data is being deleted); with ``remove_files``, its files of every generation."""
        with self._lock:
            self._entries.pop(set_id, None)
        if remove_files:
            folder = self._store.directory / "sets" / set_id
            for pattern in ("training*.usearch", "training*.json"):
                for path in folder.glob(pattern):
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        self._closed = True  # a worker stops at its next step
        with self._lock:
            self._entries.clear()

    # ---- the background worker ---------------------------------------------------------------------------------

    def _still(self, set_id: str, entry: _Entry) -> tuple[int, int, int, float] | None:
        part = None if self._closed else self._store.partition(set_id, "training")
        return part if part is not None and (part[3], part[2]) == entry.identity else None

    def _work(self, set_id: str, entry: _Entry) -> None:
        try:
            part = self._still(set_id, entry)
            if part is None:
                return
            dim, count, gen, created = part
            path = files.index_path(self._store.directory, set_id, gen)
            if entry.index is None:
                started = time.perf_counter()
                # "auto": an index saved before keeps its precision (no rebuild when the default changes).
                dtype = self._dtype if self._dtype != "auto" else ann.stored_dtype(path) or ann.default_dtype()
                logger.info("indexing set %s (%d training vectors, %s) in the background", set_id, count, dtype)
                entry.index = ann.ANNIndex.open(
                    path,
                    dim,
                    dtype,
                    count,
                    lambda first: normalize(self._store.vectors(set_id, "training", first, count)),
                    identity={"set_created": created},
                    threads=build_threads(),
                    progress=_progress_log(set_id, started),
                    rows_at=lambda rows: normalize(self._store.vectors_at(set_id, "training", rows)),
                )
                logger.info(
                    "the index of set %s is ready: %d rows in %.1f s",
                    set_id,
                    len(entry.index),
                    time.perf_counter() - started,
                )
            index = entry.index
            behind = len(index)
            while (part := self._still(set_id, entry)) is not None and len(index) < part[1]:
                start = len(index)
                chunk = normalize(self._store.vectors(set_id, "training", start, min(part[1], start + _EXTEND_ROWS)))
                with entry.lock:
                    index.add(chunk)
            if len(index) > behind:
                logger.info("the index of set %s covers all %d training rows", set_id, len(index))
            if index.grown(path):
                self._save(set_id, entry, index, path)
        except Exception as exc:  # the engine keeps answering by exact search
            entry.failed = True
            logger.warning("cannot index set %s (%s); its queries use exact search", set_id, exc)
        finally:
            with self._changed:
                self._changed.notify_all()

    def _save(self, set_id: str, entry: _Entry, index: ann.ANNIndex, path: Path) -> None:
        # Written beside its place first (seconds at 100k rows: writers are not held up), then put in place under
        # the write lock, after checking the set is still the one indexed: a set deleted (or compacted) meanwhile
        # must not get this index back. Only this worker adds to the index, so it does not change in between.
        started = time.perf_counter()
        file, meta = index.stage(path)
        try:
            with self._store._write_lock():
                part = self._still(set_id, entry)
                if part is not None:
                    index.commit((file, meta), path, {"set_created": part[3]})
                    tighten(path, PRIVATE_FILE)  # usearch writes it with the umask's mode; it holds the graph
                    logger.info("saved the index of set %s (%.1f s)", set_id, time.perf_counter() - started)
        finally:
            file.unlink(missing_ok=True)  # still there only when it was not put in place


def _progress_log(set_id: str, started: float, every: float = 10.0) -> Callable[[int, int], None]:
    """An index build's progress at INFO, at most every ``every`` seconds: how far, how fast, how long to go."""
    last = [started]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] < every or done >= total:
            return
        last[0] = now
        rate = done / max(now - started, 1e-9)
        logger.info(
            "indexing set %s: %d of %d rows (%.0f%%, %.0f rows/s, about %.0f s to go)",
            set_id,
            done,
            total,
            100 * done / total,
            rate,
            (total - done) / max(rate, 1e-9),
        )

    return report
