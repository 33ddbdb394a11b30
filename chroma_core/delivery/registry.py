"""The process's production workers: one per destination and purpose, shut down (bounded) at interpreter exit."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable

from chroma_core.config import Config
from chroma_core.delivery.production import BackgroundWorker, WorkerOptions, all_workers
from chroma_core.transport import Transport, transport_for

__all__ = ["shared_worker", "shutdown", "spill_directory_for", "worker_transport"]

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
        if worker is None or worker.closed:
            worker = _shared[key] = BackgroundWorker(
                worker_transport(config), options, spill_directory=spill_directory_for(config, name)
            )
        return worker


def shutdown(timeout: float | None = None) -> None:
    """Close every production worker of this process: stop taking records, store (or spill) what is queued.

    Runs at interpreter exit, each worker bounded by its ``exit_timeout`` unless ``timeout`` is given.
    """
    with _shared_lock:
        # Strong references first: clearing the registry may drop the last one to a shared worker, and a worker
        # gone from the weak set before it is closed would lose what it still holds.
        workers = all_workers()
        _shared.clear()
    for worker in workers:
        worker.close(worker.options.exit_timeout if timeout is None else timeout)


atexit.register(shutdown)
