"""``@recommend(...)``: every prediction's input goes to Chroma, and the prediction never suffers for it.

>>> @recommend(                                                                 # doctest: +SKIP
...     embedding=lambda features: encoder(features),
...     input_uri=lambda features: features["id"],
...     embedding_set={"model": "fraud", "model_version": "7", "layer": "pooled"},
... )
... def predict(features): ...

Two modes:

- ``mode="async"`` (default): the prediction returns at once; the embedding is queued for a background worker that
  batches production records to the engine (spilling to a bounded directory while the service is unreachable, and
  replaying them in order later). ``on_result(input_uri, result)`` is called from the worker if given
  (``result`` is None when the service could not answer), and the answer is stored with the record.
- ``mode="sync"``: Chroma is asked within ``budget_ms``; the results are passed to ``on_result`` in the caller's
  thread before the prediction returns, or, with ``return_results=True``, returned as ``Recommended(prediction,
  results)``. Past the budget the prediction is returned without them (results ``None``).

Either way: the wrapped function runs exactly once, its exceptions pass through untouched, and an error inside
Chroma is logged and swallowed (re-raised only in test mode). ``enabled=False`` (or ``CHROMA_DISABLED=1``) makes
the decorator a pass-through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.transport import transport_for
from chroma_core.types import QueryRequest, QueryResult
from chroma_core.vectors import to_matrix
from chroma_core.worker import BackgroundWorker, WorkerOptions, spill_directory_for, worker_transport
from chroma_integrations._guard import capture_internal_exceptions

__all__ = ["Recommended", "recommend", "stats"]

F = TypeVar("F", bound=Callable[..., Any])
_workers: list[BackgroundWorker] = []


@dataclasses.dataclass(frozen=True)
class Recommended:
    """A prediction with Chroma's results for its inputs (``None`` where the budget ran out)."""

    prediction: Any
    results: list[QueryResult | None]


def stats() -> list[dict[str, Any]]:
    """The counters of every decorator's background worker in this process (sent, spilled, dropped per reason)."""
    return [w.stats() for w in _workers]


def recommend(
    *,
    embedding: Callable[..., Any],
    embedding_set: dict[str, Any],
    input_uri: Callable[..., str | Sequence[str]] | None = None,
    mode: Literal["async", "sync"] = "async",
    budget_ms: float = 50.0,
    on_result: Callable[[str, QueryResult | None], None] | None = None,
    return_results: bool = False,
    enabled: bool = True,
    worker_options: WorkerOptions | None = None,
    **config_kwargs: Any,
) -> Callable[[F], F]:
    """Decorate a predict function, method or ``async def`` handler (see the module docstring).

    ``embedding`` and ``input_uri`` are called with the wrapped function's own arguments (``self`` included for
    methods) and return one vector (or a 2-d batch) and one uri (or a list of them). Without ``input_uri`` a
    content hash of each vector names it. Config keyword arguments (``chroma_server_url``, ``api_key``,
    ``persist_directory``, ...) are those of sessions.
    """
    if mode not in ("async", "sync"):
        raise ValueError(f"mode must be 'async' or 'sync', not {mode!r}")
    es = EmbeddingSet.from_dict(embedding_set)
    state: dict[str, Any] = {}
    lock = threading.Lock()

    def setup() -> dict[str, Any]:
        # Lazily, so that decorated classes stay picklable (MLflow pickles models) and no thread starts at import.
        if state.get("pid") == os.getpid():
            return state
        with lock:
            if state.get("pid") != os.getpid():
                config = load_config(**config_kwargs)
                # Resolve now: the worker thread opens the store later, when the process's cwd may have changed.
                config = dataclasses.replace(config, persist_directory=os.path.abspath(config.persist_directory))
                worker = BackgroundWorker(
                    worker_transport(config),
                    worker_options,
                    spill_directory=spill_directory_for(config, es.id),
                )
                _workers.append(worker)
                state.update(
                    pid=os.getpid(),
                    config=config,
                    worker=worker,
                    transport=None,
                    pool=concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="chroma-sync"),
                )
        return state

    def extract(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
        raw = embedding(*args, **kwargs)
        if type(raw) is np.ndarray and raw.ndim == 1 and raw.dtype == np.float32 and np.isfinite(raw.dot(raw)):
            rows = raw[None, :].copy()  # the common case, without the general conversion path
        else:
            rows = to_matrix(raw, batch=getattr(raw, "ndim", 1) == 2 or _is_nested(raw))
        if input_uri is None:
            import hashlib

            uris = ["sha1:" + hashlib.sha1(r.tobytes()).hexdigest() for r in rows]
        else:
            named = input_uri(*args, **kwargs)
            uris = [named] if isinstance(named, str) else [str(u) for u in named]
        if len(uris) != len(rows):
            raise ValueError(f"input_uri gave {len(uris)} names for {len(rows)} embeddings")
        return rows, uris

    def submit_async(rows: Any, uris: list[str]) -> None:
        st = state if state.get("pid") == os.getpid() else setup()
        submit = st["worker"].submit
        for row, uri in zip(rows, uris, strict=True):
            submit(es, row, uri, None, on_result)

    def query_sync(rows: Any, uris: list[str]) -> list[QueryResult | None]:
        st = setup()

        def ask() -> list[QueryResult]:
            if st["transport"] is None:
                st["transport"] = transport_for(st["config"])
            return list(st["transport"].query(QueryRequest(es.id, rows, tuple(uris))))

        future = st["pool"].submit(ask)
        results: list[QueryResult | None] = [None] * len(uris)
        try:
            results = list(future.result(timeout=budget_ms / 1000))
        except concurrent.futures.TimeoutError:
            future.cancel()
        finally:
            # Stored like async mode, with the answer when there is one, even when asking failed.
            for row, uri, result in zip(rows, uris, results, strict=True):
                st["worker"].submit(es, row, uri, None, None, result)
        if on_result is not None:
            for uri, result in zip(uris, results, strict=True):
                on_result(uri, result)
        return results

    def after(args: tuple[Any, ...], kwargs: dict[str, Any], prediction: Any) -> Any:
        results: list[QueryResult | None] | None = None
        try:
            rows, uris = extract(args, kwargs)
            if mode == "async":
                submit_async(rows, uris)
            else:
                results = query_sync(rows, uris)
        except Exception:
            with capture_internal_exceptions("recommend"):  # logs it (or re-raises in test mode)
                raise
        if return_results:
            return Recommended(prediction, results if results is not None else [])
        return prediction

    def decorate(fn: F) -> F:
        if not enabled or os.environ.get("CHROMA_DISABLED") == "1":
            return fn
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                prediction = await fn(*args, **kwargs)  # the user's exceptions propagate as they are
                if mode == "sync":
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(None, after, args, kwargs, prediction)
                return after(args, kwargs, prediction)

            async_wrapper.chroma_stats = lambda: setup()["worker"].stats()  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prediction = fn(*args, **kwargs)  # exactly once; the user's exceptions propagate as they are
            return after(args, kwargs, prediction)

        wrapper.chroma_stats = lambda: setup()["worker"].stats()  # type: ignore[attr-defined]
        wrapper.chroma_flush = lambda timeout=5.0: setup()["worker"].flush(timeout)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _is_nested(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], (list, tuple))
