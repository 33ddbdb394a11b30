"""``TrainingSession``: embeddings buffered in memory until ``save()`` writes and stores them as batches."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_core import hooks
from chroma_core.batch_format import write_batch
from chroma_core.buffer import Buffer
from chroma_core.errors import (
    ChromaError,
    NothingToSaveError,
    StorageError,
    with_advice,
)
from chroma_core.inputs import read_logged
from chroma_core.logs import logger
from chroma_core.paths import check_template, render_template
from chroma_core.records import BatchHeader, Mode, Records, preview_of
from chroma_core.sessions.base import SessionOptions, SetLike, _Session
from chroma_core.types import UploadReport

if TYPE_CHECKING:
    from typing_extensions import Unpack


__all__ = ["SavedBatch", "TrainingSession"]

# log()'s fast path compares with these module constants (cheaper than attribute lookups on each call).
_F32 = np.dtype(np.float32)  # the canonical instance: native float32 arrays share it, so `is` is a valid test
_NDARRAY = np.ndarray
_INF = math.inf
_now = time.time


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
            meta = (input_uri, inferences, label, None if preview is None else preview_of(preview), _now())
            lock = buf.lock
            lock.acquire()  # not `with`: acquire/release cost half as much, and this is the whole hot path
            try:
                # Inside the lock: row n and the n-th metadata must belong together even when threads interleave.
                n = buf.n
                if n == buf.capacity:
                    buf._grow(1)
                buf.block[n - buf.base] = embedding
                buf.meta.append(meta)
                buf.n = n + 1
            finally:
                lock.release()
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
            logger.warning("cannot keep an unsaved batch in %s (%s); it stays in memory only", path, exc)
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
            logger.exception("save() on leaving the session failed; %d records kept unsaved", self.pending)

    def __del__(self) -> None:
        try:
            if not self.pending:
                return
            kept = [p.kept for p in self._pending if p.kept is not None]
            if kept:
                logger.warning(
                    "a TrainingSession was discarded with %d unsaved records that its save() could not "
                    "store; they are kept in %s: upload them with `python -m chroma upload-training %s/*.jsonl`",
                    self.pending,
                    self.kept_in,
                    self.kept_in,
                )
            else:
                logger.warning(
                    "a TrainingSession with %d unsaved records was discarded without save(); call save()",
                    self.pending,
                )
        except Exception:  # noqa: S110 - never raise from a finalizer
            pass
