"""Background delivery that never blocks its host: a worker, a spill directory, and production batches.

- :mod:`~chroma_core.delivery.worker`: :class:`Worker`, a bounded queue and one daemon thread (any job);
- :mod:`~chroma_core.delivery.spill`: :class:`SpillDirectory`, batches kept on disk while a service is down;
- :mod:`~chroma_core.delivery.production`: :class:`BackgroundWorker`, production records to the engine;
- :mod:`~chroma_core.delivery.registry`: the process's shared workers and their shutdown at exit.
"""

from __future__ import annotations

from chroma_core.delivery.production import BackgroundWorker, WorkerOptions
from chroma_core.delivery.registry import shared_worker, shutdown, spill_directory_for, worker_transport
from chroma_core.delivery.spill import SpillDirectory
from chroma_core.delivery.worker import Handler, Tally, Worker

__all__ = [
    "BackgroundWorker",
    "Handler",
    "SpillDirectory",
    "Tally",
    "Worker",
    "WorkerOptions",
    "shared_worker",
    "shutdown",
    "spill_directory_for",
    "worker_transport",
]
