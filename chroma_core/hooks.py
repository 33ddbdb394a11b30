"""Listeners for what sessions do, so that integrations (MLflow) can follow along without core importing them.

A listener is any object with optional ``batch_saved(header, records)``,
``queried(embedding_set, vectors, input_uris, inferences, results)`` and ``drift_reported(report)`` (a
:class:`~chroma_core.types.drift.DriftReport` that ``chroma.drift`` returned) methods, registered under a
name (registering the same name again replaces it). Listeners are called after the event, in the caller's
thread; whatever a listener raises goes to the internal-error guard (``chroma_core.guard``: logged once,
counted) and never reaches the session's caller.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.guard import capture_internal_exceptions
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryResult

__all__ = ["emit_batch_saved", "emit_drift_reported", "emit_queried", "listeners", "register", "unregister"]

_lock = threading.Lock()
_listeners: dict[str, Any] = {}


def register(name: str, listener: Any) -> None:
    with _lock:
        _listeners[name] = listener


def unregister(name: str) -> None:
    with _lock:
        _listeners.pop(name, None)


def listeners() -> dict[str, Any]:
    with _lock:
        return dict(_listeners)


def _emit(method: str, *args: Any) -> None:
    if not _listeners:
        return
    for name, listener in listeners().items():
        fn = getattr(listener, method, None)
        if fn is None:
            continue
        with capture_internal_exceptions(f"listener {name!r} in {method}"):
            fn(*args)


def emit_batch_saved(header: BatchHeader, records: Records) -> None:
    _emit("batch_saved", header, records)


def emit_queried(
    embedding_set: EmbeddingSet,
    vectors: Any,
    input_uris: Sequence[str],
    inferences: Sequence[Any],
    results: Sequence[QueryResult],
) -> None:
    _emit("queried", embedding_set, vectors, input_uris, inferences, results)


def emit_drift_reported(report: Any) -> None:
    _emit("drift_reported", report)
