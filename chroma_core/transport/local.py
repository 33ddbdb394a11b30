"""The embedded default: the engine runs in this process, no server needed."""

from __future__ import annotations

import os
from collections.abc import Sequence

from chroma_core.batch_format import BatchReader
from chroma_core.config import Config
from chroma_core.engine.engine import Engine, open_engine
from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.transport.base import Transport
from chroma_core.types import (
    DeleteReport,
    DuplicateReport,
    DuplicatesRequest,
    QueryRequest,
    QueryResult,
    Selection,
    SelectRequest,
    SetInfo,
    UploadReport,
)
from chroma_core.types.drift import ClusterReport, DriftReport, DriftRequest

__all__ = ["LocalTransport"]


class LocalTransport(Transport):
    """Talks to an :class:`Engine` in this process (by default the one for ``persist_directory``, or for
    ``store_url`` as application ``tenant`` when a database URL is given)."""

    def __init__(
        self,
        persist_directory: str | os.PathLike[str] = Config.persist_directory,
        *,
        engine: Engine | None = None,
        store_url: str | None = None,
        tenant: str = "default",
    ) -> None:
        self.engine = (
            engine if engine is not None else open_engine(persist_directory, store_url=store_url, tenant=tenant)
        )

    def upload(self, header: BatchHeader, records: Records) -> UploadReport:
        return self.engine.put(header, records, complete=True).report(header)

    def upload_file(self, path: str | os.PathLike[str]) -> UploadReport:
        with BatchReader(path) as reader:
            return self.engine.ingest(reader)

    def query(self, request: QueryRequest) -> list[QueryResult]:
        return self.engine.query(request)

    def select(self, request: SelectRequest) -> Selection:
        return self.engine.select(request)

    def duplicates(self, request: DuplicatesRequest) -> DuplicateReport:
        return self.engine.duplicates(request)

    def drift(self, request: DriftRequest) -> DriftReport:
        from chroma_core.drift.compute import drift_report

        return drift_report(self.engine.store, request)

    def clusters(self, set_id: str, k: int = 20, since: float | None = None) -> ClusterReport:
        from chroma_core.drift.compute import cluster_report

        return cluster_report(self.engine.store, set_id, k=k, since=since)

    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        return self.engine.records(set_id, mode, start, limit)

    def delete_set(self, set_id: str) -> bool:
        return self.engine.delete_set(set_id)

    def delete_records(self, input_uris: Sequence[str], set_id: str | None = None) -> DeleteReport:
        return self.engine.delete_records(list(input_uris), set_id)

    def get_set(self, set_id: str) -> SetInfo | None:
        return self.engine.get_set(set_id)

    def list_sets(self) -> list[SetInfo]:
        return self.engine.list_sets()

    def known_dimension(self, set_id: str) -> int | None:
        info = self.engine.get_set(set_id)
        return None if info is None else info.dimension
