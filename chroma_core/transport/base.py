"""How a session reaches the engine. Sessions only ever talk to a :class:`Transport`."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any

from chroma_core.batch_format import BatchHeader, Mode, Records
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.scoring import Thresholds
from chroma_core.engine.selection import Selection
from chroma_core.engine.store import SetInfo
from chroma_core.results import QueryResult, UploadReport
from chroma_core.vectors import Matrix

__all__ = ["Transport"]


class Transport(abc.ABC):
    """``upload`` a batch idempotently, ``query`` embeddings, look sets up, ``close``."""

    @abc.abstractmethod
    def upload(self, header: BatchHeader, records: Records) -> UploadReport:
        """Store a whole in-memory batch. Sending the same batch again stores nothing twice."""

    @abc.abstractmethod
    def upload_file(self, path: str | os.PathLike[str]) -> UploadReport:
        """Stream a batch file to the engine; good records are stored even when some lines are bad."""

    @abc.abstractmethod
    def query(
        self,
        embedding_set: EmbeddingSet | str,
        vectors: Matrix,
        input_uris: Sequence[str],
        inferences: Sequence[Any] | None = None,
        thresholds: Thresholds | None = None,
    ) -> list[QueryResult]:
        """Recommendations for each row of ``vectors``."""

    @abc.abstractmethod
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
        """The ``n`` production inputs most worth labelling (see :meth:`Engine.select`)."""

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
