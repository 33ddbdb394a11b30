"""The public value types: what Chroma is asked (requests), what it answers, and what it reports.

Plain frozen dataclasses over numpy at most, shared by the engine, the transports, the sessions and the public face;
nothing here imports the engine, a transport or a server, and nothing imports these types from anywhere but here.
Requests and thresholds are validated once, when they are built, so the embedded engine and the service refuse the
same input with the same message (the service answers 422 with it). Tables of them (a selection, a batch of
results, a set's records) turn into DataFrames with ``to_pandas()`` and ``to_arrow()``.
"""

from chroma_core.types.duplicates import Copy, DuplicateGroup, DuplicateReport, DuplicatesRequest
from chroma_core.types.reports import DeleteReport, SetInfo, UploadReport
from chroma_core.types.requests import MAX_PICKS, QueryRequest, SelectRequest
from chroma_core.types.results import TAGS, Neighbor, QueryResult, QueryResults
from chroma_core.types.selection import Pick, Selection
from chroma_core.types.tables import RecordTable
from chroma_core.types.thresholds import DEFAULT_THRESHOLDS, Thresholds

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MAX_PICKS",
    "TAGS",
    "Copy",
    "DeleteReport",
    "DuplicateGroup",
    "DuplicateReport",
    "DuplicatesRequest",
    "Neighbor",
    "Pick",
    "QueryRequest",
    "QueryResult",
    "QueryResults",
    "RecordTable",
    "SelectRequest",
    "Selection",
    "SetInfo",
    "Thresholds",
    "UploadReport",
]
