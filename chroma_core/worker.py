"""Background sending that can never block or break its host: bounded memory, bounded disk, counted drops.

``submit()`` costs a queue put. A daemon thread batches what was submitted into *production batches* and uploads
them (idempotent by batch id, so a replay never duplicates). When the service cannot be reached, batches are
written to a bounded spill directory, in order, and replayed oldest first once it is back; new batches queue
behind the spilled ones so order is kept. What has to be dropped (memory queue full, spill directory full, a batch
the service rejects as invalid) is counted per reason, visible in :meth:`BackgroundWorker.stats`, and warned about.
After ``fork()`` (gunicorn workers) the child gets its own queue and thread on first use.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core.batch_format import write_batch
from chroma_core.config import Config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import ChromaError, TransportError
from chroma_core.records import BatchHeader, Records, new_batch
from chroma_core.transport import Transport, transport_for
from chroma_core.types import QueryRequest, QueryResult

__all__ = ["BackgroundWorker", "WorkerOptions", "shared_worker", "shutdown", "spill_directory_for", "worker_transport"]

logger = logging.getLogger("chroma")


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """Bounds and pacing of the background worker. These field defaults are the only defaults."""

    queue_size: int = 10_000  # records held in memory, waiting to be sent
    batch_size: int = 256  # records per upload
    flush_interval: float = 0.5  # seconds: a partial batch is sent after this
    spill_directory: str | None = None  # default: <persist_directory>/spill
    spill_max_bytes: int = 256 * 1024 * 1024
    retry_backoff_max: float = 30.0  # seconds between replay attempts while the service is down
    exit_timeout: float = 5.0  # bounded flush at interpreter exit


@dataclasses.dataclass
class _Item:
    embedding_set: EmbeddingSet
    vector: np.ndarray
    input_uri: str
    inferences: Any
    on_result: Callable[[str, QueryResult | None], None] | None
    result: QueryResult | None = None  # the answer already given (a QuerySession's), stored with the record


_workers: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()
_shared: dict[tuple[Config, str], BackgroundWorker] = {}
_shared_lock = threading.Lock()


def worker_transport(config: Config) -> Callable[[], Transport]:
    """A transport factory for a worker: like the sessions' transport, but quick to give up on a dead service."""

    def make() -> Transport:
        if config.embedded:
            return transport_for(config)
        from chroma_core.transport.http import HTTPTransport, RetryPolicy

        # The worker must not sit in long retries while records pile up: fail fast, spill, replay later.
        return HTTPTransport(config, retry=RetryPolicy(attempts=2, deadline=3.0, read_timeout=10.0))

    return make


def spill_directory_for(config: Config, name: str) -> str:
    """Where a worker of ``config``'s destination spills, one directory per purpose (``name``)."""
    return os.path.join(config.persist_directory, "spill", name)


def shared_worker(config: Config, name: str, options: WorkerOptions | None = None) -> BackgroundWorker:
    """The process's worker for one destination (a service and key, or a persist directory) and one purpose.

    Sessions come and go (``chroma.log()`` makes one per call); one thread per destination serves them all.
    ``config.persist_directory`` must be absolute: the worker opens the store later, maybe after a ``chdir``.
    """
    key = (config, name)
    with _shared_lock:
        worker = _shared.get(key)
        if worker is None or worker._closed:
            worker = _shared[key] = BackgroundWorker(
                worker_transport(config),
                options,
                spill_directory=spill_directory_for(config, name),
            )
        return worker


def shutdown(timeout: float | None = None) -> None:
    """Close every worker of this process: stop taking records, store (or spill) what is queued.

    Runs at interpreter exit, each worker bounded by its ``exit_timeout`` unless ``timeout`` is given.
    """
    with _shared_lock:
        _shared.clear()
    for worker in list(_workers):
        worker.close(worker.options.exit_timeout if timeout is None else timeout)


atexit.register(shutdown)


class BackgroundWorker:
    """See the module docstring. ``transport_factory`` is called in the worker thread (and again after fork)."""

    _instances = 0

    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        options: WorkerOptions | None = None,
        *,
        spill_directory: str | os.PathLike[str] = ".chroma/spill",
    ) -> None:
        self.options = options or WorkerOptions()
        self._factory = transport_factory
        # Each worker process spills into its own subdirectory, so two workers never race over one file; the
        # directories of processes that died are adopted and replayed (see _spill_dirs).
        self.spill_root = Path(self.options.spill_directory or spill_directory).resolve()
        BackgroundWorker._instances += 1
        self._instance = BackgroundWorker._instances
        self.spill_directory = self.spill_root / f"{os.getpid()}-{self._instance}"
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._warned: set[str] = set()
        self._pid = -1
        # A deque, not queue.Queue: append and popleft are atomic under the GIL and take no lock, which keeps
        # submit() to a few hundred nanoseconds. The worker polls it (every poll_interval when idle).
        self._queue: collections.deque[_Item] = collections.deque()
        self._submitted = 0
        self._processed = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._nudge = threading.Event()  # set by flush(): send a partial batch now, not after flush_interval
        self._closed = False
        self._seq = 0
        _workers.add(self)

    # ---- the host's side: must be cheap and must not raise ------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._pid == os.getpid() and self._thread is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            # A fresh process (first use, or a fork child): the parent's thread does not exist here.
            self._pid = os.getpid()
            self.spill_directory = self.spill_root / f"{self._pid}-{self._instance}"
            self._queue = collections.deque()
            self._submitted = self._processed = 0
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="chroma-worker", daemon=True)
            self._thread.start()

    def submit(
        self,
        embedding_set: EmbeddingSet,
        vector: np.ndarray,
        input_uri: str,
        inferences: Any = None,
        on_result: Callable[[str, QueryResult | None], None] | None = None,
        result: QueryResult | None = None,
    ) -> bool:
        """Queue one production record; False (and counted) if it had to be dropped. Never blocks.

        ``result`` is the answer already given for it, stored with it; without one, and with ``on_result``, the
        worker asks for the answer (in a batch), stores it with the record and passes it to ``on_result``.
        """
        if self._closed:
            self._drop("closed")
            return False
        if self._pid != os.getpid() or self._thread is None:
            self._ensure_started()
        if len(self._queue) >= self.options.queue_size:
            self._drop("queue_full")
            return False
        self._submitted += 1  # only ever incremented by submitters; read by flush()
        self._queue.append(_Item(embedding_set, vector, input_uri, inferences, on_result, result))
        return True

    def _drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += n
            first = reason not in self._warned
            self._warned.add(reason)
        if first:
            logger.warning("chroma: dropping production records (%s); see BackgroundWorker.stats()", reason)

    def stats(self) -> dict[str, Any]:
        """Counters: queued now, sent, spilled, replayed, dropped per reason, send failures."""
        with self._lock:
            return {
                "queued": len(self._queue),
                "spill_files": len(self._spilled()),
                "dropped": dict(self._dropped),
                **dict(self._counts),
            }

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was sent (spilled batches replayed); False if ``timeout`` passed."""
        if self._thread is None or self._pid != os.getpid():
            return True
        target = self._submitted
        self._nudge.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._processed >= target and not self._spilled():
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting records, send (or spill) what is queued, within ``timeout``."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        self._thread.join(timeout)

    # ---- the worker thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        transport: Transport | None = None
        next_replay = 0.0
        backoff = 0.5
        poll = min(0.05, self.options.flush_interval)
        while True:
            stopping = self._stop.is_set()
            # Collect a batch: up to batch_size records, or what arrived within flush_interval.
            pending: list[_Item] = []
            started = time.monotonic()
            while len(pending) < self.options.batch_size:
                try:
                    pending.append(self._queue.popleft())
                except IndexError:
                    if stopping or self._nudge.is_set():
                        break
                    if pending and time.monotonic() - started >= self.options.flush_interval:
                        break
                    if not pending and (self._stop.wait(poll) or not self._queue):
                        break
                    time.sleep(0.001 if pending else 0)
            try:
                # One directory scan per pass (it lists the root and probes sibling pids); a send may spill, so
                # only then is it looked at again.
                spilled = bool(self._spilled())
                if transport is None and (pending or spilled):
                    transport = self._factory()
                if pending:
                    assert transport is not None
                    self._send(transport, pending, spill_first=spilled)
                    spilled = bool(self._spilled())
                if transport is not None and spilled and (time.monotonic() >= next_replay or stopping):
                    if self._replay(transport):
                        backoff = 0.5
                    else:
                        next_replay = time.monotonic() + backoff
                        backoff = min(backoff * 2, self.options.retry_backoff_max)
            except Exception:
                logger.exception("chroma: background worker error; continuing")
                with self._lock:
                    self._counts["worker_errors"] += 1
            finally:
                self._processed += len(pending)
                if not self._queue:
                    self._nudge.clear()
            if stopping and not self._queue:
                return

    def _batches(self, items: Sequence[_Item]) -> list[tuple[BatchHeader, Records, list[_Item]]]:
        by_set: dict[str, list[_Item]] = {}
        for it in items:
            by_set.setdefault(it.embedding_set.id, []).append(it)
        out = []
        for group in by_set.values():
            dims = collections.Counter(len(it.vector) for it in group)
            dim = dims.most_common(1)[0][0]
            good = [it for it in group if len(it.vector) == dim]
            if len(good) < len(group):
                self._drop("dimension_mismatch", len(group) - len(good))
            header, records = new_batch(
                good[0].embedding_set,
                "production",
                np.stack([it.vector for it in good]).astype(np.float32),
                [it.input_uri for it in good],
                inferences=[it.inferences for it in good],
            )
            out.append((header, records, good))
        return out

    def _send(self, transport: Transport, items: list[_Item], *, spill_first: bool) -> None:
        for header, records, group in self._batches(items):
            # The service being down shows in the query already: spill at once rather than wait out a second
            # failure on the upload.
            reachable = not spill_first and self._answer(transport, header, records, group)
            if any(it.result is not None for it in group):
                records.results = [it.result for it in group]
            try:
                if spill_first:
                    self._spill(header, records)  # keep order: older spilled batches go first
                elif reachable:
                    self._upload(transport, header, records)
                else:
                    self._spill_failed(header, records)
            finally:
                self._deliver(group)

    def _upload(self, transport: Transport, header: BatchHeader, records: Records) -> None:
        try:
            transport.upload(header, records)
        except TransportError:
            self._spill_failed(header, records)
            return
        except ChromaError as exc:
            logger.warning("chroma: the service rejected a production batch: %s", exc)
            self._drop("rejected", len(records))
            return
        with self._lock:
            self._counts["sent"] += len(records)

    def _spill_failed(self, header: BatchHeader, records: Records) -> None:
        self._spill(header, records)
        with self._lock:
            self._counts["send_failures"] += 1

    def _answer(self, transport: Transport, header: BatchHeader, records: Records, group: list[_Item]) -> bool:
        """Ask, in one query, for the answers that an ``on_result`` waits for and nobody has given yet.

        False when the service could not be reached (the batch is then spilled without trying to upload it).
        """
        wanted = [i for i, it in enumerate(group) if it.on_result is not None and it.result is None]
        if not wanted:
            return True
        try:
            results = transport.query(
                QueryRequest(
                    header.set_id,
                    records.vectors[wanted],
                    tuple(records.input_uris[i] for i in wanted),
                    tuple(records.inferences[i] for i in wanted),
                )
            )
        except TransportError:
            return False
        except ChromaError:
            return True  # no answer (e.g. no training data yet): on_result gets None, the records are still stored
        for i, result in zip(wanted, results, strict=True):
            group[i].result = result
        return True

    @staticmethod
    def _deliver(group: list[_Item]) -> None:
        for it in group:
            if it.on_result is None:
                continue
            try:
                it.on_result(it.input_uri, it.result)
            except Exception:
                logger.exception("chroma: on_result callback failed")

    def _spilled(self) -> list[Path]:
        """This worker's spilled batches, then those left by dead processes, each oldest first."""
        out: list[Path] = []
        for directory in [self.spill_directory, *self._orphans()]:
            try:
                out.extend(sorted(p for p in directory.glob("*.jsonl") if not p.name.startswith(".")))
            except OSError:
                continue
        return out

    def _orphans(self) -> list[Path]:
        try:
            siblings = [d for d in self.spill_root.iterdir() if d.is_dir() and d != self.spill_directory]
        except OSError:
            return []
        out = []
        for d in sorted(siblings):
            pid = d.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                out.append(d)
        return out

    def _spill(self, header: BatchHeader, records: Records) -> None:
        used = 0
        for p in self._spilled():
            with contextlib.suppress(OSError):
                used += p.stat().st_size
        estimate = len(records) * (header.dimension * 4 * 4 // 3 + 200)
        if used + estimate > self.options.spill_max_bytes:
            self._drop("spill_full", len(records))
            return
        self._seq += 1
        name = f"{time.time_ns():020d}-{self._seq:06d}-{header.batch_id}.jsonl"
        try:
            write_batch(self.spill_directory / name, header, records)
        except OSError as exc:
            logger.warning("chroma: cannot spill to %s (%s)", self.spill_directory, exc)
            self._drop("spill_error", len(records))
            return
        with self._lock:
            self._counts["spilled"] += len(records)

    def _replay(self, transport: Transport) -> bool:
        """Send spilled batches oldest first; stop at the first failure. True when the directory is empty."""
        for path in self._spilled():
            try:
                report = transport.upload_file(path)
            except TransportError:
                return False
            except ChromaError as exc:
                logger.warning("chroma: dropping spilled batch %s the service rejects: %s", path.name, exc)
                self._drop("rejected")
                report = None
            # Count before the file disappears: flush() reads "no spill files" as "everything replayed".
            if report is not None:
                with self._lock:
                    self._counts["replayed"] += report.read
            path.unlink(missing_ok=True)
            if path.parent != self.spill_directory:
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # an adopted directory, now empty
        return True


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
