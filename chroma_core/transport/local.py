"""The embedded default: the engine runs in this process, no server needed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from chroma_core.batch_format import BatchHeader, BatchReader, Mode, Records
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.engine import Engine, open_engine
from chroma_core.engine.scoring import Thresholds
from chroma_core.engine.selection import Selection
from chroma_core.engine.store import SetInfo
from chroma_core.results import QueryResult, UploadReport
from chroma_core.transport.base import Transport
from chroma_core.vectors import Matrix

__all__ = ["LocalTransport"]


class LocalTransport(Transport):
    """Talks to an :class:`Engine` in this process (by default the one for ``persist_directory``)."""

    def __init__(self, persist_directory: str | os.PathLike[str] = ".chroma", *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else open_engine(persist_directory)

    def upload(self, header: BatchHeader, records: Records) -> UploadReport:
        result = self.engine.put(header, records, complete=True)
        return UploadReport(
            header.batch_id, header.set_id, header.mode, result.received, result.stored, result.duplicates
        )

    def upload_file(self, path: str | os.PathLike[str]) -> UploadReport:
        with BatchReader(path) as reader:
            return self.engine.ingest(reader)

    def query(
        self,
        embedding_set: EmbeddingSet | str,
        vectors: Matrix,
        input_uris: Sequence[str],
        inferences: Sequence[Any] | None = None,
        thresholds: Thresholds | None = None,
    ) -> list[QueryResult]:
        return self.engine.query(embedding_set, vectors, input_uris, inferences, thresholds)

    def select(
        self,
        set_id: str,
        n: int = 100,
        *,
        diversity: float = 0.5,
        since: float | None = None,
        rescore: bool = False,
        thresholds: Thresholds | None = None,
    ) -> Selection:
        return self.engine.select(set_id, n, diversity=diversity, since=since, rescore=rescore, thresholds=thresholds)

    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        return self.engine.records(set_id, mode, start, limit)

    def get_set(self, set_id: str) -> SetInfo | None:
        return self.engine.get_set(set_id)

    def list_sets(self) -> list[SetInfo]:
        return self.engine.list_sets()

    def known_dimension(self, set_id: str) -> int | None:
        info = self.engine.get_set(set_id)
        return None if info is None else info.dimension
