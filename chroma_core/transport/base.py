"""How a session reaches the engine. Sessions only ever talk to a :class:`Transport`."""

from __future__ import annotations

import abc
import os

from chroma_core.records import BatchHeader, Mode, Records
from chroma_core.types import QueryRequest, QueryResult, Selection, SelectRequest, SetInfo, UploadReport

__all__ = ["Transport"]


class Transport(abc.ABC):
    """``upload`` a batch idempotently, ``query`` embeddings, ``select`` inputs to label, look sets up, ``close``."""

    @abc.abstractmethod
    def upload(self, header: BatchHeader, records: Records) -> UploadReport:
        """Store a whole in-memory batch. Sending the same batch again stores nothing twice."""

    @abc.abstractmethod
    def upload_file(self, path: str | os.PathLike[str]) -> UploadReport:
        """Stream a batch file to the engine; good records are stored even when some lines are bad."""

    @abc.abstractmethod
    def query(self, request: QueryRequest) -> list[QueryResult]:
        """Recommendations for each row of ``request.vectors``."""

    @abc.abstractmethod
    def select(self, request: SelectRequest) -> Selection:
        """The production inputs most worth labelling (see ``chroma.select``)."""

    @abc.abstractmethod
    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        """A page of a set's stored records (with their results), for export."""

    @abc.abstractmethod
    def get_set(self, set_id: str) -> SetInfo | None: ...

    @abc.abstractmethod
    def list_sets(self) -> list[SetInfo]: ...

    def known_dimension(self, set_id: str) -> int | None:
        """The set's dimension if it can be had cheaply (no network), so log() can reject a mismatch at once."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
