"""The engine: stores batches and answers queries, over any :class:`~chroma_core.engine.store.Store`."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np

from chroma_core.batch_format import BatchReader
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import duplicates, selection
from chroma_core.engine.scoring import SetModel
from chroma_core.engine.search import Neighbours
from chroma_core.engine.store import DeleteReport, PutResult, Store
from chroma_core.engine.stores import open_store
from chroma_core.engine.warmup import Warmer
from chroma_core.errors import DimensionMismatchError, UnknownEmbeddingSetError
from chroma_core.records import BatchHeader, Mode, Records, utc_timestamp
from chroma_core.types import (
    DEFAULT_THRESHOLDS,
    Copy,
    DuplicateReport,
    DuplicatesRequest,
    QueryRequest,
    QueryResult,
    Selection,
    SelectRequest,
    SetInfo,
    UploadReport,
)
from chroma_core.vectors import check_dimension

__all__ = ["Engine", "open_engine"]


class Engine:
    """Storage plus recommendation scoring. Thread-safe; one per persist directory per process is enough.

    Each queried set's training records are kept in memory (a :class:`SetModel`), extended when other sessions
    or processes add rows and read again when the set's ``revision`` says rows were deleted. Where the store has
    its own index of a set (the SQLite store builds one for large sets), only the rows it does not cover yet are
    searched here.

    A training write that leaves a set with at least ``warm_rows`` rows loads its model and calibrates it in the
    background, ``warm_delay`` seconds after the set's last write (:mod:`chroma_core.engine.warmup`), so the first
    query after a large upload finds both ready (``warm_rows=None``: never).
    """

    def __init__(self, store: Store, *, warm_rows: int | None = 10_000, warm_delay: float = 1.0) -> None:
        self.store = store
        self._models: dict[str, SetModel] = {}
        self._lock = threading.Lock()  # the dictionaries below; a set's model is loaded under its own lock
        self._set_locks: dict[str, threading.Lock] = {}
        self._warm_rows = warm_rows
        self._warmer = Warmer(self._warm, delay=warm_delay)

    def close(self) -> None:
        self._warmer.close()
        self.store.close()

    def _stored(self, header: BatchHeader, result: PutResult) -> PutResult:
        if header.mode == "training" and result.stored and self._warm_rows is not None:
            info = self.store.get_set(header.set_id)
            if info is not None and info.training >= self._warm_rows:
                self._warmer.schedule(header.set_id)
        return result

    def _warm(self, set_id: str) -> None:
        model = self._model(set_id)
        if len(model) >= DEFAULT_THRESHOLDS.min_training:
            model.calibration(DEFAULT_THRESHOLDS)

    def wait_for_model(self, set_id: str, timeout: float | None = None) -> bool:
        """Until no background load or calibration of the set is pending or running (True), or ``timeout``."""
        return self._warmer.wait(set_id, timeout)

    # ---- writing -----------------------------------------------------------------------------------------------

    def put(self, header: BatchHeader, records: Records, *, complete: bool = True) -> PutResult:
        """Store one in-memory batch (see :meth:`Store.put`)."""
        return self._stored(header, self.store.put(header, [records], complete=lambda: complete))

    def ingest(self, reader: BatchReader) -> UploadReport:
        """Store every good record of a batch stream, in one transaction (the whole batch or none of it).

        Bad lines are reported, never fatal to good ones. Only a whole, verified file marks the batch complete;
        a partial one can be sent again to fill the gaps, and nothing is stored twice.
        """
        header = reader.header
        result = self.store.put(header, reader.chunks(), complete=lambda: not reader.problems)
        return self._stored(header, result).report(header, reader.problems)

    def create_set(self, embedding_set: EmbeddingSet, dimension: int) -> SetInfo:
        return self.store.create_set(embedding_set, dimension)

    def get_set(self, set_id: str) -> SetInfo | None:
        return self.store.get_set(set_id)

    def list_sets(self) -> list[SetInfo]:
        return self.store.list_sets()

    # ---- deleting ----------------------------------------------------------------------------------------------

    def delete_set(self, set_id: str) -> bool:
        """Remove a set with all its records and vectors; False if there was no such set."""
        with self._set_lock(set_id):  # not while its model is being loaded: that model would outlive the set
            with self._lock:
                self._models.pop(set_id, None)
            return self.store.delete_set(set_id)

    def delete_records(self, input_uris: list[str] | tuple[str, ...], set_id: str | None = None) -> DeleteReport:
        """Remove the training and production records of these inputs, in every set (or in ``set_id`` only)."""
        report = self.store.delete_records(input_uris, set_id=set_id)
        for affected in report.sets:
            with self._set_lock(affected), self._lock:
                self._models.pop(affected, None)
        return report

    # ---- answering ---------------------------------------------------------------------------------------------

    def _set_lock(self, set_id: str) -> threading.Lock:
        with self._lock:
            return self._set_locks.setdefault(set_id, threading.Lock())

    def _model(self, set_id: str) -> SetModel:
        # One lock per set: loading a large set (seconds, often in the background after its upload) holds up the
        # queries of that set, which would load it too, never those of the others.
        with self._set_lock(set_id):
            info = self.store.get_set(set_id)
            if info is None or info.training == 0:
                raise UnknownEmbeddingSetError(set_id)
            model = self._models.get(set_id)
            if model is None or model.revision != info.revision:
                model = self._new_model(info)
                with self._lock:
                    self._models[set_id] = model
            if len(model) < info.training:
                self._grow(model, info.training)
            return model

    def _new_model(self, info: SetInfo) -> SetModel:
        store, set_id, dim = self.store, info.id, info.dimension
        probe = store.nearest(set_id, np.empty((0, dim), dtype=np.float32), 1)
        search = Neighbours(
            dim,
            candidates=lambda queries, k: store.nearest(set_id, queries, k),
            rows=lambda rows: store.vectors_at(set_id, "training", rows),
            vectors=lambda start, stop: store.vectors(set_id, "training", start, stop),
            start=0 if probe is None else min(probe.covered, info.training),
        )
        state = (
            lambda key: store.read_state(set_id, key),
            lambda key, value: store.write_state(set_id, key, value),
        )
        return SetModel(set_id, dim, search=search, revision=info.revision, state=state)

    def _grow(self, model: SetModel, count: int) -> None:
        """Bring a set's model up to ``count`` training rows (another session or process added them)."""
        set_id, start = model.set_id, len(model)
        records = self.store.records(set_id, "training", start, count)
        # Vectors only of the rows the store's index does not cover.
        vectors = self.store.vectors(set_id, "training", len(model.search), count)
        model.add(vectors, [r.input_uri for r in records], [r.label for r in records], [r.inferences for r in records])

    def query(self, request: QueryRequest) -> list[QueryResult]:
        # A store that can (PostgreSQL) reads the set's revision and searches in one transaction.
        with getattr(self.store, "one_transaction", contextlib.nullcontext)():
            model = self._model(request.set_id)
            check_dimension(request.vectors.shape[1], model.dimension, "query embedding")
            return model.query(request)

    def select(self, request: SelectRequest) -> Selection:
        """The ``n`` production inputs most worth labelling (see :func:`chroma_core.engine.selection.select`)."""
        return selection.select(self.store, self.query, request)

    def duplicates(self, request: DuplicatesRequest) -> DuplicateReport:
        """Near duplicates among a set's training records, in its production inputs, and in the training
        records of ``request.against`` (see :mod:`chroma_core.engine.duplicates`)."""
        # As a query: over PostgreSQL every read of the report shares one transaction and connection.
        with getattr(self.store, "one_transaction", contextlib.nullcontext)():
            return self._duplicates(request)

    def _duplicates(self, request: DuplicatesRequest) -> DuplicateReport:
        model = self._model(request.set_id)
        threshold = request.threshold
        if threshold is None:
            threshold = model.calibration(DEFAULT_THRESHOLDS).near_duplicate if len(model) > 1 else 0.0
        store, set_id = self.store, request.set_id
        production: list[Copy] = []
        info = store.get_set(set_id)
        if request.production and info is not None and info.production:
            production = duplicates.copies_of(
                model,
                duplicates.chunked(lambda a, b: store.vectors(set_id, "production", a, b), info.production),
                lambda rows: [r.input_uri for r in store.records_at(set_id, "production", rows)],
                threshold,
            )
        leaks: list[Copy] = []
        if request.against is not None:
            other = store.get_set(request.against)
            if other is None:
                raise UnknownEmbeddingSetError(request.against)
            if other.dimension != model.dimension:
                raise DimensionMismatchError(
                    f"set {request.against[:12]} holds {other.dimension}-dimensional embeddings and set "
                    f"{set_id[:12]} {model.dimension}-dimensional ones: only sets of one model and layer can "
                    "share inputs."
                )
            leaks = duplicates.copies_of(
                model,
                duplicates.chunked(lambda a, b: store.vectors(other.id, "training", a, b), other.training),
                lambda rows: [r.input_uri for r in store.records_at(other.id, "training", rows)],
                threshold,
            )
        return DuplicateReport(
            set_id,
            float(threshold),
            tuple(duplicates.training_groups(model, threshold)),
            tuple(production),
            tuple(leaks),
            request.against,
        )

    # ---- reading -----------------------------------------------------------------------------------------------

    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        """Stored rows ``start..start+limit`` of one mode, with their results: a page of an export."""
        info = self.store.get_set(set_id)
        if info is None:
            raise UnknownEmbeddingSetError(set_id)
        count = info.training if mode == "training" else info.production
        stop = min(count, start + max(0, limit))
        stored = self.store.records(set_id, mode, start, stop) if stop > start else []
        vectors = (
            self.store.vectors(set_id, mode, start, stop) if stored else np.empty((0, info.dimension), dtype=np.float32)
        )
        records = Records(
            vectors,
            [r.id for r in stored],
            [r.input_uri for r in stored],
            [r.inferences for r in stored],
            [r.label for r in stored],
            [r.time for r in stored],
            results=[r.result for r in stored] if any(r.result is not None for r in stored) else [],
            previews=[r.preview for r in stored] if any(r.preview is not None for r in stored) else [],
        )
        embedding_set = EmbeddingSet.from_dict(info.embedding_set)
        header = BatchHeader(f"{set_id[:16]}-{mode}-{start}", embedding_set, mode, info.dimension, utc_timestamp())
        return header, records


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def open_engine(
    persist_directory: str | os.PathLike[str], *, store_url: str | None = None, tenant: str = "default"
) -> Engine:
    """The process-wide engine for a persist directory, or for a store URL and tenant (created on first use)."""
    key = f"{store_url}\0{tenant}" if store_url else str(Path(persist_directory).resolve())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(open_store(key, store_url=store_url, tenant=tenant))
        return engine
