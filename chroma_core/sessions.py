"""``TrainingSession``, ``QuerySession`` and the module-level ``log()``: the seed's public API.

A training session buffers embeddings in memory (nothing is stored until :meth:`TrainingSession.save`), then
writes a batch file atomically if ``bufferlocal`` was called, and uploads the batch to the engine. A query session
answers each ``log()`` with a :class:`~chroma_core.results.QueryResult`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from chroma_core import hooks
from chroma_core.batch_format import write_batch
from chroma_core.buffer import Buffer
from chroma_core.config import Config, ConfigOptions, load_config
from chroma_core.delivery import BackgroundWorker, shared_worker, spill_directory_for
from chroma_core.embedding_set import EmbeddingSet, SetRef, parse_set_ref
from chroma_core.errors import (
    ChromaError,
    ConfigError,
    InvalidEmbeddingSetError,
    NothingToSaveError,
    StorageError,
    with_advice,
)
from chroma_core.inputs import read_logged
from chroma_core.paths import check_template, render_template
from chroma_core.records import BatchHeader, Mode, Records, preview_of
from chroma_core.transport import Transport, transport_for
from chroma_core.types import QueryRequest, QueryResult, QueryResults, Thresholds, UploadReport

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["QuerySession", "SavedBatch", "SessionOptions", "TrainingSession", "log"]

logger = logging.getLogger("chroma")

_F32 = np.dtype(np.float32)  # the canonical instance: native float32 arrays share it, so `is` is a valid test
_NDARRAY = np.ndarray
_INF = math.inf
_now = time.time

SetLike = SetRef


@dataclasses.dataclass(frozen=True)
class SavedBatch:
    """One batch written by ``save()``: where it went and what the engine did with it."""

    batch_id: str
    set_id: str
    count: int
    path: Path | None
    upload: UploadReport | None


@dataclasses.dataclass
class _Pending:
    """A batch taken out of the buffer by save(); kept, with its batch id, until it is fully saved."""

    header: BatchHeader
    records: Records
    path: Path | None = None
    written: bool = False
    kept: Path | None = None  # where it waits on disk after a failed save


class SessionOptions(ConfigOptions, total=False):
    """What both sessions take besides their set: configuration keywords, or a ``Config`` / ``Transport`` made
    already (a transport handed in is the caller's to close)."""

    config: Config | None
    transport: Transport | None


class _Session:
    _mode: Mode
    #: How long, in seconds, one call to a service may take with its retries (None: the transport's default).
    _deadline: float | None = None

    def __init__(
        self,
        embedding_set: SetLike | None = None,
        *,
        config: Config | None = None,
        transport: Transport | None = None,
        **options: Unpack[ConfigOptions],
    ) -> None:
        config = config or load_config(**options)
        # Resolved now: the engine (and the query sessions' storage thread) may be opened after a chdir.
        self.config = dataclasses.replace(config, persist_directory=os.path.abspath(config.persist_directory))
        # A dict is a set at once; an id (or id prefix) is checked now and looked up on first use.
        self._set_ref = None if embedding_set is None else parse_set_ref(embedding_set)
        self._transport = transport
        self._owns_transport = transport is None

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = transport_for(self.config, deadline=self._deadline)
        return self._transport

    @property
    def embedding_set(self) -> EmbeddingSet | None:
        """The session's set (None if each ``log()`` names its own); an id given for it is looked up once."""
        ref = self._set_ref
        if isinstance(ref, str):
            self._set_ref = ref = self._lookup(ref)
        return ref

    def _lookup(self, ref: str) -> EmbeddingSet:
        return EmbeddingSet.from_dict(self.transport.find_set(ref).embedding_set)

    def _set(self, embedding_set: SetLike | None) -> EmbeddingSet:
        if embedding_set is not None:
            parsed = parse_set_ref(embedding_set)
            return self._lookup(parsed) if isinstance(parsed, str) else parsed
        es = self.embedding_set
        if es is None:
            raise InvalidEmbeddingSetError(
                f"no embedding_set: pass it to {type(self).__name__}(embedding_set={{...}}) or to log()."
            )
        return es

    def close(self) -> None:
        """Release the transport if this session created it."""
        if self._owns_transport and self._transport is not None:
            self._transport.close()
            self._transport = None

    def __repr__(self) -> str:
        ref = self._set_ref
        set_id = (ref if isinstance(ref, str) else ref.id)[:12] if ref is not None else None
        return f"<{type(self).__name__} set={set_id} url={self.config.chroma_url or 'embedded'}>"


class TrainingSession(_Session):
    """Buffers training embeddings; :meth:`save` writes and uploads them as one batch per embedding set.

    >>> with TrainingSession(embedding_set={"model": "m", "model_version": "1", "layer": "ctx"}) as s:  # doctest: +SKIP
    ...     s.bufferlocal(file="/tmp/chroma-$model-$layer-$timestamp.jsonl")
    ...     s.log(input_uri="/images/123.png", embedding=vector, inferences={"label": "cat", "score": 0.9})
    """

    _mode: Mode = "training"

    def __init__(self, embedding_set: SetLike | None = None, **options: Unpack[SessionOptions]) -> None:
        super().__init__(embedding_set, **options)
        self._file: str | None = None
        self._buffers: dict[str, Buffer] = {}
        self._pending: list[_Pending] = []
        self._default: Buffer | None = None
        self._save_lock = threading.Lock()

    def bufferlocal(self, file: str | os.PathLike[str]) -> TrainingSession:
        """Also write each saved batch to ``file`` (a template; see :mod:`chroma_core.paths`)."""
        template = os.fspath(file)
        check_template(template, None if self.embedding_set is None else self.embedding_set.key)
        self._file = template
        return self

    def _buffer(self, embedding_set: SetLike | None) -> Buffer:
        es = self._set(embedding_set)
        buf = self._buffers.get(es.id)
        if buf is None:
            if self._file is not None:
                check_template(self._file, es.key)
            buf = self._buffers[es.id] = Buffer(es, self.transport.known_dimension(es.id))
        return buf

    def log(
        self,
        input_uri: str | Sequence[str],
        embedding: Any,
        inferences: Any = None,
        *,
        label: Any = None,
        preview: str | Sequence[str | None] | None = None,
        embedding_set: SetLike | None = None,
    ) -> None:
        """Buffer one embedding (or a batch: a 2-d array with a list of ``input_uri``).

        ``inferences`` is any JSON-serialisable value (the model's outputs); ``label`` is the training label when
        it is known, used to check whether production predictions agree with their neighbours; ``preview`` is a
        short text shown for the input instead of its uri (the text itself, a file name), cut to 500 characters.
        """
        buf = self._default if embedding_set is None else None
        # Fast path: one native float32 vector of the buffer's shape, a str uri. Checks are ordered cheapest
        # first; the finiteness test is one BLAS dot (inf/NaN anywhere makes it non-finite).
        if (
            buf is not None
            and type(embedding) is _NDARRAY
            and embedding.dtype is _F32
            and embedding.shape == buf.shape
            and type(input_uri) is str
            and input_uri
            and 0.0 < embedding.dot(embedding) < _INF  # finite (inf/NaN anywhere fail it) and not all zeros
        ):
            with buf.lock:
                n = buf.n
                if n == buf.capacity:
                    buf._grow(n + 1)
                buf.matrix[n] = embedding
                buf.n = n + 1
                # Inside the lock: row n and the n-th uri must belong together even when threads interleave.
                buf.uris.append(input_uri)
                buf.inferences.append(inferences)
                buf.labels.append(label)
                buf.previews.append(None if preview is None else preview_of(preview))
                buf.times.append(_now())
            return
        if buf is None:
            buf = self._buffer(embedding_set)
            if embedding_set is None:
                self._default = buf
        logged = read_logged(input_uri, embedding, inferences, label, preview)
        buf.append_rows(logged.rows, logged.uris, logged.inferences, logged.labels, logged.previews)

    @property
    def pending(self) -> int:
        """Records logged but not yet saved."""
        return sum(b.n for b in self._buffers.values()) + sum(len(p.records) for p in self._pending)

    def save(self, *, upload: bool = True) -> list[SavedBatch]:
        """Write (if ``bufferlocal``) and upload (unless ``upload=False``) everything logged so far.

        Each batch is saved on its own: one that fails (a service down, a file that cannot be written) never
        holds up the others. A failed batch is kept, with its batch id, in memory (the next ``save()`` retries it,
        and uploads are idempotent, so a retry never stores a record twice) and on disk under the persist
        directory's ``spill/training/``, so that it outlives the process; the error raised says where, and how
        to upload it by hand.
        """
        with self._save_lock:
            for buf in self._buffers.values():
                if buf.n:
                    self._pending.append(_Pending(*buf.take(self._mode)))
            if not self._pending:
                raise NothingToSaveError(
                    "save() was called with nothing logged since the last save; call log(...) first."
                )
            saved: list[SavedBatch] = []
            failed: list[tuple[_Pending, Exception]] = []
            for pending in list(self._pending):
                try:
                    saved.append(self._save_one(pending, upload))
                except (ChromaError, OSError) as exc:
                    failed.append((pending, exc))
                    self._keep(pending)
                    continue
                self._pending.remove(pending)
                if pending.kept is not None:
                    pending.kept.unlink(missing_ok=True)
            if failed:
                raise self._not_saved(failed)
            return saved

    def _save_one(self, pending: _Pending, upload: bool) -> SavedBatch:
        header = pending.header
        if self._file is not None and not pending.written:
            if pending.path is None:
                values = {
                    **header.embedding_set.key,
                    "set_id": header.set_id,
                    "mode": header.mode,
                    "batch_id": header.batch_id,
                    "timestamp": header.created_at.rstrip("Z"),
                }
                pending.path = render_template(self._file, values)
            try:
                write_batch(pending.path, header, pending.records, overwrite=False)
            except OSError as exc:
                raise StorageError(f"cannot write the batch file {str(pending.path)!r}: {exc.strerror or exc}") from exc
            pending.written = True
        report = self.transport.upload(header, pending.records) if upload else None
        hooks.emit_batch_saved(header, pending.records)
        return SavedBatch(header.batch_id, header.set_id, len(pending.records), pending.path, report)

    @property
    def kept_in(self) -> Path:
        """Where batches that failed to save are kept on disk until a ``save()`` succeeds."""
        return Path(self.config.persist_directory) / "spill" / "training"

    def _keep(self, pending: _Pending) -> None:
        """Put a batch that failed to save on disk (once), so it outlives the process; never raises."""
        if pending.kept is not None:
            return
        path = self.kept_in / f"{pending.header.set_id[:12]}-{pending.header.batch_id}.jsonl"
        try:
            write_batch(path, pending.header, pending.records)
        except OSError as exc:
            logger.warning("chroma: cannot keep an unsaved batch in %s (%s); it stays in memory only", path, exc)
            return
        pending.kept = path

    def _not_saved(self, failed: list[tuple[_Pending, Exception]]) -> Exception:
        records = sum(len(p.records) for p, _ in failed)
        first = failed[0][1]
        where = (
            f" They are also on disk in {str(self.kept_in)!r}: upload them with `python -m chroma upload-training "
            f"{self.kept_in}/*.jsonl` if this process ends first."
            if all(p.kept is not None for p, _ in failed)
            else ""
        )
        advice = (
            f" {records} record(s) in {len(failed)} batch(es) were not saved; they are kept and the next save() "
            f"retries them (a retry never stores a record twice).{where}"
        )
        if isinstance(first, ChromaError):
            return with_advice(first, advice)
        return StorageError(f"{first}.{advice}")

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if self.pending:
                self.save()
        except Exception:
            if exc_type is None:
                raise
            # Never hide the user's own exception behind ours; report ours and let theirs propagate.
            logger.exception("chroma: save() on leaving the session failed; %d records kept unsaved", self.pending)

    def __del__(self) -> None:
        try:
            if not self.pending:
                return
            kept = [p.kept for p in self._pending if p.kept is not None]
            if kept:
                logger.warning(
                    "chroma: a TrainingSession was discarded with %d unsaved records that its save() could not "
                    "store; they are kept in %s: upload them with `python -m chroma upload-training %s/*.jsonl`",
                    self.pending,
                    self.kept_in,
                    self.kept_in,
                )
            else:
                logger.warning(
                    "chroma: a TrainingSession with %d unsaved records was discarded without save(); call save()",
                    self.pending,
                )
        except Exception:  # noqa: S110 - never raise from a finalizer
            pass


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
                    logger.warning("chroma: production records are still being stored after %.1fs", timeout)
        finally:
            super().close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log(
    *,
    input_uri: str | Sequence[str],
    embedding: Any,
    embedding_set: SetLike,
    inferences: Any = None,
    training_mode: bool = True,
    label: Any = None,
    preview: str | Sequence[str | None] | None = None,
    chroma_config: str | os.PathLike[str] | None = None,
    chroma_json: str | None = None,
    chroma_server_url: str | None = None,
    api_key: str | None = None,
    persist_directory: str | os.PathLike[str] | None = None,
) -> QueryResult | list[QueryResult] | None:
    """Log without a session: in training mode the embedding is stored at once (a one-call batch); otherwise
    the recommendation is returned. Prefer sessions for volume: they batch, and hold no global state.
    """
    kwargs: dict[str, Any] = dict(
        chroma_config=chroma_config,
        chroma_json=chroma_json,
        chroma_server_url=chroma_server_url,
        api_key=api_key,
        persist_directory=persist_directory,
    )
    if training_mode:
        trainer = TrainingSession(embedding_set, **kwargs)
        trainer.log(input_uri, embedding, inferences, label=label, preview=preview)
        trainer.save()
        return None
    with QuerySession(embedding_set, **kwargs) as querier:
        result: QueryResult | list[QueryResult] = querier.log(input_uri, embedding, inferences, preview=preview)
    return result
