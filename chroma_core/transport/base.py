"""How a session reaches the engine. Sessions only ever talk to a :class:`Transport`."""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence

from chroma_core.embedding_set import SetRef, is_full_id, parse_set_ref
from chroma_core.errors import AmbiguousSetError, ChromaError, UnknownEmbeddingSetError
from chroma_core.records import BatchHeader, Mode, Records
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

    def duplicates(self, request: DuplicatesRequest) -> DuplicateReport:
        """Near duplicates in a set's training data, its production inputs and another set (``chroma.duplicates``)."""
        raise ChromaError(f"{type(self).__name__} cannot look for duplicates; use the embedded engine or a service.")

    @abc.abstractmethod
    def drift(self, request: DriftRequest) -> DriftReport:
        """Drift of a set's production inputs per time window (see ``chroma.drift``)."""

    @abc.abstractmethod
    def clusters(self, set_id: str, k: int = 20, since: float | None = None) -> ClusterReport:
        """A set's training and production inputs clustered (see ``chroma.clusters``)."""

    @abc.abstractmethod
    def records(self, set_id: str, mode: Mode, start: int = 0, limit: int = 8192) -> tuple[BatchHeader, Records]:
        """A page of a set's stored records (with their results), for export."""

    @abc.abstractmethod
    def delete_set(self, set_id: str) -> bool:
        """Remove a set and everything stored for it; False if there was no such set."""

    @abc.abstractmethod
    def delete_records(self, input_uris: Sequence[str], set_id: str | None = None) -> DeleteReport:
        """Remove the training and production records of these inputs, in every set (or in ``set_id``)."""

    @abc.abstractmethod
    def get_set(self, set_id: str) -> SetInfo | None: ...

    @abc.abstractmethod
    def list_sets(self) -> list[SetInfo]: ...

    def set_id(self, ref: SetRef) -> str:
        """The full id of the set ``ref`` names: its dict, its id, or a unique id prefix (looked up)."""
        parsed = parse_set_ref(ref)
        if not isinstance(parsed, str):
            return parsed.id
        return parsed if is_full_id(parsed) else self.find_set(parsed).id

    def find_set(self, ref: SetRef) -> SetInfo:
        """The stored set ``ref`` names; :class:`UnknownEmbeddingSetError` if none, :class:`AmbiguousSetError`
        if an id prefix names several."""
        parsed = parse_set_ref(ref)
        if not isinstance(parsed, str) or is_full_id(parsed):
            set_id = parsed if isinstance(parsed, str) else parsed.id
            info = self.get_set(set_id)
            if info is None:
                raise UnknownEmbeddingSetError(set_id)
            return info
        matches = [s for s in self.list_sets() if s.id.startswith(parsed)]
        if not matches:
            raise UnknownEmbeddingSetError(parsed)
        if len(matches) > 1:
            raise AmbiguousSetError(parsed, sorted(s.id for s in matches))
        return matches[0]

    def known_dimension(self, set_id: str) -> int | None:
        """The set's dimension if it can be had cheaply (no network), so log() can reject a mismatch at once."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
