"""Production records, delivered in the background: bounded memory, bounded disk, counted drops.

:class:`BackgroundWorker` is what sessions and ``@recommend`` submit production records to. Its thread (a
:class:`~chroma_core.delivery.worker.Worker`) groups them per embedding set into production batches, asks in one
query for the answers that an ``on_result`` waits for, stores each batch with its answers (idempotent by batch id,
so a replay never duplicates) and calls the ``on_result`` callbacks. When the service cannot be reached, batches
go to a bounded :class:`~chroma_core.delivery.spill.SpillDirectory`, in order, and are replayed oldest first once
it is back; new batches queue behind the spilled ones so order is kept. What has to be dropped (memory queue full,
spill directory full, a batch the service rejects as invalid) is counted per reason, visible in
:meth:`BackgroundWorker.stats`, and warned about once.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chroma_core.delivery.spill import SpillDirectory
from chroma_core.delivery.worker import Handler, Tally, Worker
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import ChromaError, TransportError
from chroma_core.guard import capture_internal_exceptions
from chroma_core.logs import logger
from chroma_core.records import BatchHeader, Records, new_batch
from chroma_core.transport.base import Transport
from chroma_core.types import QueryRequest, QueryResult

__all__ = ["BackgroundWorker", "WorkerOptions", "all_workers"]


OnResult = Callable[[str, "QueryResult | None"], None]


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """Bounds and pacing of the background worker. These field defaults are the only defaults."""

    queue_size: int = 10_000  # records held in memory, waiting to be sent
    batch_size: int = 256  # records per upload
    flush_interval: float = 0.5  # seconds: records go this long after the first (sooner when the queue is half full)
    spill_directory: str | None = None  # default: <persist_directory>/spill/<purpose>
    spill_max_bytes: int = 256 * 1024 * 1024
    retry_backoff_max: float = 30.0  # seconds between replay attempts while the service is down
    exit_timeout: float = 5.0  # bounded flush at interpreter exit


@dataclasses.dataclass
class _Item:
    embedding_set: EmbeddingSet
    vector: np.ndarray
    input_uri: str
    inferences: Any
    on_result: OnResult | None
    result: QueryResult | None = None  # the answer already given (a QuerySession's), stored with the record
    preview: str | None = None


_workers: weakref.WeakSet[BackgroundWorker] = weakref.WeakSet()


def all_workers() -> list[BackgroundWorker]:
    """Every production worker of this process (for :func:`chroma_core.delivery.shutdown`)."""
    return list(_workers)


class BackgroundWorker:
    """See the module docstring. ``transport_factory`` is called on the worker's thread (and again after fork)."""

    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        options: WorkerOptions | None = None,
        *,
        spill_directory: str | os.PathLike[str] = ".chroma/spill",
    ) -> None:
        self.options = options or WorkerOptions()
        self.tally = Tally("production records", "BackgroundWorker.stats()")
        self.spill = SpillDirectory(
            self.options.spill_directory or spill_directory, self.options.spill_max_bytes, self.tally
        )
        self._worker: Worker[_Item] = Worker(
            _Delivery(transport_factory, self.options, self.spill, self.tally),
            name="chroma-worker",
            tally=self.tally,
            queue_size=self.options.queue_size,
            batch_size=self.options.batch_size,
            linger=self.options.flush_interval,
        )
        _workers.add(self)

    @property
    def closed(self) -> bool:
        return self._worker.closed

    def submit(
        self,
        embedding_set: EmbeddingSet,
        vector: np.ndarray,
        input_uri: str,
        inferences: Any = None,
        on_result: OnResult | None = None,
        result: QueryResult | None = None,
        preview: str | None = None,
    ) -> bool:
        """Queue one production record; False (and counted) if it had to be dropped. Never blocks.

        ``result`` is the answer already given for it, stored with it; without one, and with ``on_result``, the
        worker asks for the answer (in a batch), stores it with the record and passes it to ``on_result``.
        ``preview`` is the record's preview (``records.preview_of``).
        """
        return self._worker.submit(_Item(embedding_set, vector, input_uri, inferences, on_result, result, preview))

    def stats(self) -> dict[str, Any]:
        """Counters: queued now, spill files, dropped per reason, sent, spilled, replayed, send failures."""
        stats = self._worker.stats()
        return {"queued": stats.pop("queued"), "spill_files": len(self.spill), **stats}

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was sent (spilled batches replayed); False if ``timeout`` passed."""
        return self._worker.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting records, send (or spill) what is queued, within ``timeout``."""
        self._worker.close(timeout)


class _Delivery(Handler[_Item]):
    """The worker thread's side: batches, answers, uploads, spills and replays."""

    def __init__(
        self, factory: Callable[[], Transport], options: WorkerOptions, spill: SpillDirectory, tally: Tally
    ) -> None:
        self.factory = factory
        self.options = options
        self.spill = spill
        self.tally = tally
        self._transport: Transport | None = None
        self._next_replay = 0.0
        self._backoff = 0.5

    def start(self) -> None:
        self._transport = None  # a fork child must not share the parent's connections
        self._next_replay = 0.0
        self._backoff = 0.5
        self.spill.open()

    def transport(self) -> Transport | None:
        """The transport, made on first use; None (said once, counted) when it cannot be made now."""
        if self._transport is None:
            try:
                self._transport = self.factory()
            except ChromaError as exc:  # e.g. the persist directory cannot be opened: keep the records, try later
                self.tally.add("connect_failures", warning=f"cannot reach the engine yet ({exc}); spilling")
        return self._transport

    def process(self, items: list[_Item]) -> None:
        spill_first = len(self.spill) > 0  # keep order: older spilled batches go first
        transport = None if spill_first else self.transport()
        for es, vectors, group in self._groups(items):
            # The service being down shows in the query already: spill at once rather than wait out a second
            # failure on the upload.
            reachable = transport is not None and self._answer(transport, es, vectors, group)
            header, records = new_batch(
                es,
                "production",
                vectors,
                [it.input_uri for it in group],
                inferences=[it.inferences for it in group],
                results=[it.result for it in group],
                previews=[it.preview for it in group],
            )
            try:
                if spill_first:
                    self.spill.write(header, records)
                elif transport is None or not reachable:
                    self._spill_failed(header, records)
                else:
                    try:
                        transport.upload(header, records)
                    except TransportError:
                        self._spill_failed(header, records)
                    except ChromaError as exc:
                        logger.warning("the service rejected a production batch: %s", exc)
                        self.tally.drop("rejected", len(records))
                    else:
                        self.tally.add("sent", len(records))
            finally:
                self._deliver(group)

    def backlog(self, stopping: bool) -> float | None:
        """Replay spilled batches when due (at once when stopping); None once there are none."""
        if not len(self.spill):
            return None
        now = time.monotonic()
        if now < self._next_replay and not stopping:
            return self._next_replay - now
        transport = self.transport()
        if transport is not None and self._replay(transport):
            self._backoff = 0.5
            return None
        self._next_replay = now + self._backoff
        self._backoff = min(self._backoff * 2, self.options.retry_backoff_max)
        return self._next_replay - time.monotonic()

    # ---- pieces ---------------------------------------------------------------------------------------------------

    def _groups(self, items: Sequence[_Item]) -> list[tuple[EmbeddingSet, np.ndarray, list[_Item]]]:
        """Items per embedding set, in order, with their vectors stacked; rows of a minority dimension dropped."""
        by_set: dict[str, list[_Item]] = {}
        for it in items:
            by_set.setdefault(it.embedding_set.id, []).append(it)
        out = []
        for group in by_set.values():
            dim = collections.Counter(len(it.vector) for it in group).most_common(1)[0][0]
            good = [it for it in group if len(it.vector) == dim]
            if len(good) < len(group):
                self.tally.drop("dimension_mismatch", len(group) - len(good))
            out.append((good[0].embedding_set, np.stack([it.vector for it in good]).astype(np.float32), good))
        return out

    def _spill_failed(self, header: BatchHeader, records: Records) -> None:
        self.spill.write(header, records)
        self.tally.add("send_failures")
        self.spill.rescan()  # after a failure: adopt what processes that died meanwhile left behind

    def _answer(self, transport: Transport, es: EmbeddingSet, vectors: np.ndarray, group: list[_Item]) -> bool:
        """Ask, in one query, for the answers that an ``on_result`` waits for and nobody has given yet.

        False when the service could not be reached (the batch is then spilled without trying to upload it).
        """
        wanted = [i for i, it in enumerate(group) if it.on_result is not None and it.result is None]
        if not wanted:
            return True
        try:
            results = transport.query(
                QueryRequest(
                    es.id,
                    vectors[wanted],
                    tuple(group[i].input_uri for i in wanted),
                    tuple(group[i].inferences for i in wanted),
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
            if it.on_result is not None:
                with capture_internal_exceptions("the on_result callback"):
                    it.on_result(it.input_uri, it.result)

    def _replay(self, transport: Transport) -> bool:
        """Send spilled batches oldest first; stop at the first failure. True when none are left."""
        while (path := self.spill.oldest()) is not None:
            try:
                report = transport.upload_file(path)
            except TransportError:
                self.spill.rescan()
                return False
            except ChromaError as exc:
                if not path.exists():
                    self.spill.rescan()  # another process adopted it and sent it: not ours to count
                    continue
                logger.warning("dropping spilled batch %s the service rejects: %s", path.name, exc)
                self.tally.drop("rejected")
            else:
                self.tally.add("replayed", report.read)
            self.spill.remove(path)
        return True
