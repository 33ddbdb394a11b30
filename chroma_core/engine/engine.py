"""The engine: stores batches and answers queries, over any :class:`~chroma_core.engine.store.Store`."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from chroma_core.batch_format import BatchReader
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import ann, selection
from chroma_core.engine.index import normalize
from chroma_core.engine.scoring import SetModel
from chroma_core.engine.store import PutResult, SQLiteStore, Store
from chroma_core.errors import UnknownEmbeddingSetError
from chroma_core.records import BatchHeader, Mode, Records, utc_timestamp
from chroma_core.types import QueryRequest, QueryResult, Selection, SelectRequest, SetInfo, UploadReport
from chroma_core.vectors import check_dimension

__all__ = ["Engine", "open_engine"]


class Engine:
    """Storage plus recommendation scoring. Thread-safe; one per persist directory per process is enough."""

    def __init__(self, store: Store, *, ann_threshold: int = 20_000, index_dtype: str = "f16") -> None:
        """``ann_threshold``: sets with at least this many training vectors use the approximate index (if usearch
        is installed; exact search otherwise). ``index_dtype``: its precision, ``f32``, ``f16`` or ``i8``."""
        self.store = store
        self.ann_threshold = ann_threshold
        self.index_dtype = index_dtype
        self._models: dict[str, SetModel] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def put(self, header: BatchHeader, records: Records, *, complete: bool = True) -> PutResult:
        return self.store.put(header, records, complete=complete)

    def ingest(self, reader: BatchReader) -> UploadReport:
        """Store every good record of a batch stream, in one transaction (the whole batch or none of it).

        Bad lines are reported, never fatal to good ones. Only a whole, verified file marks the batch complete;
        a partial one can be sent again to fill the gaps, and nothing is stored twice.
        """
        header = reader.header
        result = self.store.put_chunks(header, reader.chunks(), complete=lambda: not reader.problems)
        return UploadReport(
            header.batch_id,
            header.set_id,
            header.mode,
            result.received,
            result.stored,
            result.duplicates,
            tuple(str(p) for p in reader.problems),
        )

    def create_set(self, embedding_set: EmbeddingSet, dimension: int) -> SetInfo:
        header = BatchHeader("", embedding_set, "training", dimension, "")
        return self.store.create_set(header)

    def get_set(self, set_id: str) -> SetInfo | None:
        return self.store.get_set(set_id)

    def list_sets(self) -> list[SetInfo]:
        return self.store.list_sets()

    def _model(self, set_id: str) -> SetModel:
        with self._lock:
            info = self.store.get_set(set_id)
            if info is None or info.training == 0:
                raise UnknownEmbeddingSetError(set_id)
            model = self._models.get(set_id)
            if model is None:
                model = self._models[set_id] = SetModel(set_id, info.dimension)
            if len(model) < info.training:
                self._grow(model, info.training)
            return model

    def _grow(self, model: SetModel, count: int) -> None:
        """Bring a set's in-memory model up to ``count`` training rows (another session or process added them)."""
        set_id, start = model.set_id, len(model)
        use_ann = count >= self.ann_threshold and ann.available()
        meta = [
            self.store.column(set_id, "training", c, start)[: count - start]
            for c in ("input_uri", "label", "inferences")
        ]
        path = self.store.vector_path(set_id, "training").with_suffix(".usearch")
        if use_ann and not isinstance(model.index, ann.ANNIndex):
            # The loaded (or rebuilt) index already holds every row's vector: only the records are added.
            model.index = ann.ANNIndex.open(
                path,
                model.dimension,
                self.index_dtype,
                count,
                lambda first: normalize(self.store.vectors(set_id, "training", first)),
            )
            model.add(None, *meta)
        else:
            model.add(self.store.vectors(set_id, "training", start)[: count - start], *meta)
        if isinstance(model.index, ann.ANNIndex):
            dim = model.dimension
            model.row_source = lambda rows: np.asarray(self.store.memmap(set_id, "training", count, dim)[rows])
            model.index.save_if_grown(path)

    def query(self, request: QueryRequest) -> list[QueryResult]:
        model = self._model(request.set_id)
        check_dimension(request.vectors.shape[1], model.dimension, "query embedding")
        return model.query(request)

    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        """Stored rows ``start..start+limit`` of one mode, with their results: a page of an export."""
        info = self.store.get_set(set_id)
        if info is None:
            raise UnknownEmbeddingSetError(set_id)
        count = info.training if mode == "training" else info.production
        stop = min(count, start + max(0, limit))
        stored = self.store.record_range(set_id, mode, start, stop) if stop > start else []
        vectors = np.empty((len(stored), info.dimension), dtype=np.float32)
        if stored:
            vectors[:] = self.store.memmap(set_id, mode, count, info.dimension)[start:stop]
        records = Records(
            vectors,
            [r.id for r in stored],
            [r.input_uri for r in stored],
            [r.inferences for r in stored],
            [r.label for r in stored],
            [r.time for r in stored],
            results=[
                None
                if r.result is None
                else QueryResult.from_dict({**r.result, "input_uri": r.input_uri, "set_id": set_id})
                for r in stored
            ]
            if any(r.result is not None for r in stored)
            else [],
        )
        embedding_set = EmbeddingSet.from_dict(info.embedding_set)
        header = BatchHeader(f"{set_id[:16]}-{mode}-{start}", embedding_set, mode, info.dimension, utc_timestamp())
        return header, records

    def select(self, request: SelectRequest) -> Selection:
        """The ``n`` production inputs most worth labelling (see :func:`chroma_core.engine.selection.select`)."""
        return selection.select(self.store, self.query, request)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def open_engine(persist_directory: str | os.PathLike[str]) -> Engine:
    """The process-wide engine for a persist directory (created on first use)."""
    key = str(Path(persist_directory).resolve())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(SQLiteStore(key))
        return engine
