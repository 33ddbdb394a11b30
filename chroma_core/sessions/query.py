"""``QuerySession``: each ``log()`` answered inline, the input stored on a background thread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from chroma_core import hooks
from chroma_core.delivery import BackgroundWorker, shared_worker, spill_directory_for
from chroma_core.errors import (
    ConfigError,
)
from chroma_core.inputs import read_logged
from chroma_core.logs import logger
from chroma_core.records import Mode
from chroma_core.sessions.base import SessionOptions, SetLike, _Session
from chroma_core.types import QueryRequest, QueryResult, QueryResults, Thresholds

if TYPE_CHECKING:
    from typing_extensions import Unpack


__all__ = ["QuerySession"]


class QuerySession(_Session):
    """Answers each ``log()`` with Chroma's recommendation for that embedding.

    >>> session = QuerySession(embedding_set={"model": "m", "model_version": "1", "layer": "ctx"})  # doctest: +SKIP
    >>> result = session.log(input_uri="/images/999.png", embedding=vector)                       # doctest: +SKIP
    >>> result.training_recommended, result.not_useful                                             # doctest: +SKIP
    (True, False)

    ``thresholds`` overrides the calibrated ones, e.g. ``{"novelty": 0.4, "percentile": 99}``.

    ``deadline`` (seconds, default 5) bounds how long one ``log()`` may wait for a service, retries included; then
    it raises :class:`~chroma_core.errors.TransportError`. A query session answers inline, so it raises when it
    cannot answer: in serving code that must never fail, use ``@recommend``
    (``chroma_integrations.serving``), which never raises and keeps what it cannot send.

    Every logged embedding is stored as a production record of its set, with the answer given, so that
    ``chroma select`` can later pick which inputs to label; ``store=False`` keeps nothing. Storing happens on a
    background thread (batched, spilled to disk while a service is unreachable), so ``log()`` does not wait for
    it; :meth:`flush` (and leaving a ``with`` block) waits, up to a timeout, until everything logged is stored.
    """

    _mode: Mode = "production"

    def __init__(
        self,
        embedding_set: SetLike | None = None,
        *,
        thresholds: Thresholds | Mapping[str, Any] | None = None,
        store: bool = True,
        deadline: float = 5.0,
        **options: Unpack[SessionOptions],
    ) -> None:
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not 0 < deadline <= 3600:
            raise ConfigError(f"deadline must be a number of seconds from 0 to 3600, not {deadline!r}.")
        self._deadline = float(deadline)
        super().__init__(embedding_set, **options)
        self.thresholds = Thresholds.coerce(thresholds)
        self.store = store
        self._worker: BackgroundWorker | None = None
        self._owns_worker = False

    def _storage(self) -> BackgroundWorker:
        if self._worker is None:
            if self._owns_transport:
                self._worker = shared_worker(self.config, "queries")
            else:
                # A transport handed in (a test's, an engine's) is where the records belong; it gets its own thread.
                transport = self.transport
                self._worker = BackgroundWorker(
                    lambda: transport,
                    spill_directory=spill_directory_for(self.config, "queries"),
                )
                self._owns_worker = True
        return self._worker

    @overload
    def log(
        self,
        input_uri: str,
        embedding: Any,
        inferences: Any = None,
        *,
        preview: str | None = None,
        embedding_set: SetLike | None = None,
    ) -> QueryResult: ...

    @overload
    def log(
        self,
        input_uri: Sequence[str],
        embedding: Any,
        inferences: Any = None,
        *,
        preview: Sequence[str | None] | None = None,
        embedding_set: SetLike | None = None,
    ) -> QueryResults: ...

    def log(
        self,
        input_uri: str | Sequence[str],
        embedding: Any,
        inferences: Any = None,
        *,
        preview: str | Sequence[str | None] | None = None,
        embedding_set: SetLike | None = None,
    ) -> QueryResult | QueryResults:
        """Return a :class:`QueryResult` for one embedding, or a :class:`QueryResults` list of them for a batch.

        ``preview`` (a string, or a list for a batch) is stored with the production record and shown for it by
        ``chroma select``, exports and the page.
        """
        es = self._set(embedding_set)
        rows, uris, infs, _, previews, batch = read_logged(input_uri, embedding, inferences, None, preview)
        results = self.transport.query(QueryRequest(es.id, rows, tuple(uris), tuple(infs), self.thresholds))
        if self.store:
            submit = self._storage().submit
            for row, uri, inf, result, shown in zip(rows, uris, infs, results, previews, strict=True):
                submit(es, row, uri, inf, None, result, shown)
        hooks.emit_queried(es, rows, uris, infs, results)
        return QueryResults(results) if batch else results[0]

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every embedding logged so far is stored; False if ``timeout`` (seconds) passed first.

        What is not stored by then is not lost: it stays queued (or spilled to disk) and is stored later.
        """
        return self._worker is None or self._worker.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) for the logged embeddings to be stored, then release the transport."""
        try:
            if self._worker is not None:
                if self._owns_worker:
                    self._worker.close(timeout)
                elif not self._worker.flush(timeout):
                    logger.warning("production records are still being stored after %.1fs", timeout)
        finally:
            super().close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
