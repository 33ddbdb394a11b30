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
  results)``. Past the budget, or when the service cannot answer, the prediction is returned without them (results
  ``None``).

Either way: the wrapped function runs exactly once, its exceptions pass through untouched, and an error inside
Chroma is logged (once per distinct error) and swallowed (``chroma_core.guard``). ``enabled=False`` or
``CHROMA_DISABLED=1`` makes the decorator a pass-through; both are checked on every call too, so setting
``decorator.enabled = False`` (the :class:`Recommender` is ``wrapper.chroma``) or the variable switches Chroma off
at run time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from chroma_core.config import Config, ConfigOptions, load_config
from chroma_core.delivery import BackgroundWorker, WorkerOptions, spill_directory_for, worker_transport
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import ChromaError
from chroma_core.guard import capture_internal_exception, capture_internal_exceptions
from chroma_core.transport import Transport, transport_for
from chroma_core.types import QueryRequest, QueryResult
from chroma_core.vectors import to_matrix

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Recommended", "Recommender", "recommend", "stats"]

F = TypeVar("F", bound=Callable[..., Any])
_workers: list[BackgroundWorker] = []

# The async fast path compares with these (cheaper than attribute lookups on every prediction).
_NDARRAY = np.ndarray
_F32 = np.dtype(np.float32)  # the canonical instance: native float32 arrays share it, so `is` is a valid test
_INF = float("inf")
_PID = [os.getpid()]  # this process's id, kept by a fork hook: no getpid system call on every prediction


def _forked() -> None:
    _PID[0] = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forked)


def _disabled() -> bool:
    """``CHROMA_DISABLED=1`` switches every decorator off, read on each call so it works at run time (~1 µs)."""
    return os.environ.get("CHROMA_DISABLED") == "1"


@dataclasses.dataclass(frozen=True)
class Recommended:
    """A prediction with Chroma's results for its inputs (``None`` where the budget ran out)."""

    prediction: Any
    results: list[QueryResult | None]


def stats() -> list[dict[str, Any]]:
    """The counters of every decorator's background worker in this process (sent, spilled, dropped per reason)."""
    return [w.stats() for w in _workers]


@dataclasses.dataclass
class _Process:
    """What one process needs to serve a decorator; made on first use, again after fork."""

    pid: int
    config: Config
    worker: BackgroundWorker
    pool: concurrent.futures.ThreadPoolExecutor
    transport: Transport | None = None


class Recommender:
    """``recommend(...)``, the decorator: ``recommend(...)(fn)`` wraps a predict function, method or ``async def``
    handler (see the module docstring). ``recommend`` is this class under the seed's name.

    ``embedding`` and ``input_uri`` are called with the wrapped function's own arguments (``self`` included for
    methods) and return one vector (or a 2-d batch) and one uri (or a list of them). Without ``input_uri`` a
    content hash of each vector names it. Config keyword arguments (``chroma_server_url``, ``api_key``,
    ``persist_directory``, ...) are those of sessions.

    Picklable (MLflow pickles models): the per-process state (worker, thread pool, transport) is left out and made
    again, lazily, wherever it is used; no thread starts at import or at decoration.
    """

    def __init__(
        self,
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
        **config_kwargs: Unpack[ConfigOptions],
    ) -> None:
        if mode not in ("async", "sync"):
            raise ValueError(f"mode must be 'async' or 'sync', not {mode!r}")
        self.embedding = embedding
        self.embedding_set = EmbeddingSet.from_dict(embedding_set)
        self.input_uri = input_uri
        self.mode = mode
        self.budget_ms = budget_ms
        self.on_result = on_result
        self.return_results = return_results
        self.enabled = enabled
        self.worker_options = worker_options
        self.config_kwargs = config_kwargs
        self._lock = threading.Lock()
        self._process: _Process | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_process"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether calls go through Chroma now (``enabled`` and no ``CHROMA_DISABLED=1``)."""
        return self.enabled and not _disabled()

    # ---- wrapping -------------------------------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        if not self.active:
            return fn
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                prediction = await fn(*args, **kwargs)  # exactly once; the user's exceptions propagate as they are
                if not self.active:
                    return prediction
                if self.mode == "sync":
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(None, self._after, args, kwargs, prediction)
                return self._after(args, kwargs, prediction)

            return self._expose(async_wrapper)  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prediction = fn(*args, **kwargs)  # exactly once; the user's exceptions propagate as they are
            if not self.enabled or _disabled():  # self.active, inline: this runs on every prediction
                return prediction
            return self._after(args, kwargs, prediction)

        return self._expose(wrapper)  # type: ignore[return-value]

    def _expose(self, wrapper: Callable[..., Any]) -> Callable[..., Any]:
        wrapper.chroma = self  # type: ignore[attr-defined]
        wrapper.chroma_stats = self.stats  # type: ignore[attr-defined]
        wrapper.chroma_flush = self.flush  # type: ignore[attr-defined]
        return wrapper

    def stats(self) -> dict[str, Any]:
        """This decorator's background worker's counters (sent, spilled, dropped per reason...)."""
        return self._setup().worker.stats()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every input so far is stored; False if ``timeout`` (seconds) passed first."""
        return self._setup().worker.flush(timeout)

    # ---- per call -------------------------------------------------------------------------------------------------

    def _setup(self) -> _Process:
        process = self._process
        if process is not None and process.pid == os.getpid():
            return process
        with self._lock:
            process = self._process
            if process is None or process.pid != os.getpid():
                config = load_config(**self.config_kwargs)
                # Resolve now: the worker thread opens the store later, when the process's cwd may have changed.
                config = dataclasses.replace(config, persist_directory=os.path.abspath(config.persist_directory))
                worker = BackgroundWorker(
                    worker_transport(config),
                    self.worker_options,
                    spill_directory=spill_directory_for(config, self.embedding_set.id),
                )
                _workers.append(worker)
                pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="chroma-sync")
                process = self._process = _Process(os.getpid(), config, worker, pool)
        return process

    def _after(self, args: tuple[Any, ...], kwargs: dict[str, Any], prediction: Any) -> Any:
        results: list[QueryResult | None] = []
        try:  # the guard, without a context manager's ~1.5 us on every call
            raw = self.embedding(*args, **kwargs)
            if self.mode == "async":
                process = self._process
                if process is None or process.pid != _PID[0]:
                    process = self._setup()
                named = None if self.input_uri is None else self.input_uri(*args, **kwargs)
                # The common case, one finite float32 vector named by a string, queued as it is (a copy: callers
                # reuse their buffers), without the general path's 2-d matrix and lists.
                if (
                    type(raw) is _NDARRAY
                    and raw.dtype is _F32
                    and raw.ndim == 1
                    and type(named) is str
                    and 0.0 < raw.dot(raw) < _INF
                ):
                    process.worker.submit(self.embedding_set, raw.copy(), named, None, self.on_result)
                    return Recommended(prediction, results) if self.return_results else prediction
                rows, uris = self._extract(raw, named)
                submit = process.worker.submit
                for row, uri in zip(rows, uris, strict=True):
                    submit(self.embedding_set, row, uri, None, self.on_result)
            else:
                rows, uris = self._extract(raw, None if self.input_uri is None else self.input_uri(*args, **kwargs))
                results = self._ask(rows, uris)
        except Exception as exc:
            capture_internal_exception("recommend", exc)
        if self.return_results:
            return Recommended(prediction, results)
        return prediction

    def _extract(self, raw: Any, named: str | Sequence[str] | None) -> tuple[Any, list[str]]:
        """The rows of what ``embedding`` returned, and their uris from what ``input_uri`` did (None: hashes)."""
        if type(raw) is np.ndarray and raw.ndim == 1 and raw.dtype == np.float32 and 0.0 < raw.dot(raw) < np.inf:
            rows = raw[None, :].copy()  # one vector, without the general conversion path
        else:
            rows = to_matrix(raw, batch=getattr(raw, "ndim", 1) == 2 or _is_nested(raw))
        if named is None:
            uris = ["sha1:" + hashlib.sha1(r.tobytes()).hexdigest() for r in rows]
        else:
            uris = [named] if isinstance(named, str) else [str(u) for u in named]
        if len(uris) != len(rows):
            raise ValueError(f"input_uri gave {len(uris)} names for {len(rows)} embeddings")
        return rows, uris

    def _ask(self, rows: Any, uris: list[str]) -> list[QueryResult | None]:
        process = self._setup()

        def ask() -> list[QueryResult]:
            if process.transport is None:
                process.transport = transport_for(process.config)
            return list(process.transport.query(QueryRequest(self.embedding_set.id, rows, tuple(uris))))

        future = process.pool.submit(ask)
        results: list[QueryResult | None] = [None] * len(uris)
        try:
            results = list(future.result(timeout=self.budget_ms / 1000))
        except concurrent.futures.TimeoutError:
            future.cancel()
            process.worker.tally.add("over_budget", len(uris))
        except ChromaError as exc:
            # The service could not answer (down, no training data yet): no results, as past the budget. Said
            # once and counted, not logged per call: one line per input would flood the log.
            process.worker.tally.add("unanswered", len(uris), warning=f"Chroma could not answer ({exc})")
        finally:
            # Stored like async mode, with the answer when there is one, even when asking failed.
            for row, uri, result in zip(rows, uris, results, strict=True):
                process.worker.submit(self.embedding_set, row, uri, None, None, result)
        if self.on_result is not None:
            with capture_internal_exceptions("the on_result callback"):
                for uri, result in zip(uris, results, strict=True):
                    self.on_result(uri, result)
        return results


def _is_nested(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], (list, tuple))


recommend = Recommender
