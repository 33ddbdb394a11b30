"""The service's wire contract, shared by the server and the HTTP transport; no server dependency here.

Errors are JSON ``{"error": {"code": "<stable code>", "message": "<what to do>"}}``. The codes, their HTTP
statuses, and the client-side exceptions they map back to are listed in :data:`ERRORS`.

A query's vectors may cross as raw little-endian float32 (:data:`QUERY_CONTENT_TYPE`, docs/service.md): an
8-byte prefix (the magic ``CHQ1`` and the header's length as a little-endian uint32), a small JSON header
(``count``, ``dimension``, and optionally ``input_uris``, ``inferences``, ``thresholds``), then the
``count x dimension`` matrix, row by row. :func:`encode_query` and :func:`decode_query` are its one codec.
A batch upload may take the same shape (:data:`BATCH_BINARY_TYPE`, magic ``CHB1``): :func:`encode_batch` writes it,
``server/batch_binary.py`` reads it.
"""

from __future__ import annotations

import ipaddress
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_core.batch_header import header_json
from chroma_core.errors import (
    BatchFormatError,
    ChromaError,
    ConfigError,
    DimensionMismatchError,
    InvalidEmbeddingError,
    InvalidEmbeddingSetError,
    NoProductionDataError,
    TransportError,
    UnknownEmbeddingSetError,
)
from chroma_core.json_text import json_text
from chroma_core.records import BatchHeader, Records

__all__ = [
    "DELETE_PAGE",
    "API_PREFIX",
    "APPLICATION_HEADER",
    "BATCH_BINARY_TYPE",
    "BATCH_CONTENT_TYPES",
    "ERRORS",
    "IDEMPOTENCY_HEADER",
    "KEY_HEADER",
    "QUERY_CONTENT_TYPE",
    "ApiError",
    "QueryBody",
    "code_for",
    "decode_query",
    "encode_batch",
    "encode_query",
    "is_loopback",
]

API_PREFIX = "/v1"
#: The most input_uris one ``POST /v1/records/delete`` takes (clients send more in pages of this size).
DELETE_PAGE = 10_000
KEY_HEADER = "X-Chroma-Api-Key"
APPLICATION_HEADER = "X-Chroma-Application-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: A batch upload whose vectors are raw little-endian float32 beside a JSON header of columns (docs/batch-format.md).
BATCH_BINARY_TYPE = "application/x-chroma-batch"
BATCH_CONTENT_TYPES = ("application/x-ndjson", "application/jsonl", "application/octet-stream", BATCH_BINARY_TYPE)
#: A query whose vectors are raw little-endian float32 (the module docstring); JSON is ``application/json``.
QUERY_CONTENT_TYPE = "application/x-chroma-query"

#: code -> (HTTP status, exception class a client raises for it)
ERRORS: dict[str, tuple[int, type[ChromaError]]] = {
    "invalid_embedding": (422, InvalidEmbeddingError),
    "dimension_mismatch": (422, DimensionMismatchError),
    "invalid_embedding_set": (422, InvalidEmbeddingSetError),
    "invalid_request": (422, ChromaError),
    "invalid_thresholds": (422, ConfigError),
    "unknown_embedding_set": (404, UnknownEmbeddingSetError),
    "no_production_data": (404, NoProductionDataError),
    "not_found": (404, ChromaError),
    "batch_format": (400, BatchFormatError),
    "query_format": (400, ChromaError),
    "unauthorized": (401, TransportError),
    "forbidden": (403, TransportError),
    "payload_too_large": (413, TransportError),
    "too_many_embeddings": (413, TransportError),
    "unsupported_media_type": (415, TransportError),
    "method_not_allowed": (405, TransportError),
    "request_timeout": (408, TransportError),
    "shutting_down": (503, TransportError),
    "store_unavailable": (503, TransportError),
    "internal": (500, TransportError),
}

_BY_CLASS: list[tuple[type[ChromaError], str]] = [
    (DimensionMismatchError, "dimension_mismatch"),
    (InvalidEmbeddingError, "invalid_embedding"),
    (InvalidEmbeddingSetError, "invalid_embedding_set"),
    (UnknownEmbeddingSetError, "unknown_embedding_set"),
    (NoProductionDataError, "no_production_data"),
    (BatchFormatError, "batch_format"),
    (ConfigError, "invalid_thresholds"),
]


class ApiError(Exception):
    """Raised by the server to answer with one of the codes in :data:`ERRORS` (its HTTP status follows).

    For refusals that are about the request rather than about Chroma's data (keys, limits, media types); the
    service's handlers turn our own :class:`ChromaError` into its code with :func:`code_for`. Never raised to users.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown wire error code {code!r}")
        super().__init__(message)
        self.code = code
        self.status = ERRORS[code][0]


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost': the only clients a server without API keys serves."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def code_for(exc: ChromaError) -> str:
    """The wire code for one of our exceptions (most specific class first)."""
    for cls, code in _BY_CLASS:
        if isinstance(exc, cls):
            return code
    return "invalid_request"


# ---- the binary query body -------------------------------------------------------------------------------------

_QUERY_MAGIC = b"CHQ1"
_PREFIX = struct.Struct("<4sI")
_F32 = np.dtype("<f4")
_HEADER_FIELDS = frozenset({"count", "dimension", "input_uris", "inferences", "thresholds"})


def encode_query(
    vectors: np.ndarray,
    input_uris: Sequence[str] | None = None,
    inferences: Sequence[Any] | None = None,
    thresholds: dict[str, Any] | None = None,
) -> bytes:
    """The :data:`QUERY_CONTENT_TYPE` body for a ``(count, dimension)`` matrix and what goes with it.

    >>> body = encode_query(np.ones((2, 3), np.float32), ["/a", "/b"])
    >>> decode_query(body, max_rows=8, max_dimension=8).vectors.shape
    (2, 3)
    """
    matrix = np.ascontiguousarray(vectors, dtype=_F32)
    header: dict[str, Any] = {"count": int(matrix.shape[0]), "dimension": int(matrix.shape[1])}
    if input_uris is not None:
        header["input_uris"] = list(input_uris)
    if inferences is not None:
        header["inferences"] = list(inferences)
    if thresholds:
        header["thresholds"] = thresholds
    text = _padded(json.dumps(header, separators=(",", ":"), default=str).encode("utf-8"))
    return b"".join((_PREFIX.pack(_QUERY_MAGIC, len(text)), text, matrix.tobytes()))


class QueryBody:
    """A decoded :data:`QUERY_CONTENT_TYPE` body: the matrix (read-only, over the body's bytes) and its header."""

    __slots__ = ("inferences", "input_uris", "thresholds", "vectors")

    def __init__(
        self,
        vectors: np.ndarray,
        input_uris: list[str] | None,
        inferences: list[Any] | None,
        thresholds: dict[str, Any] | None,
    ) -> None:
        self.vectors = vectors
        self.input_uris = input_uris
        self.inferences = inferences
        self.thresholds = thresholds


def _format_error(message: str) -> ApiError:
    return ApiError("query_format", f"{message} (docs/service.md describes {QUERY_CONTENT_TYPE}).")


def _header_of(body: bytes) -> tuple[dict[str, Any], int]:
    if len(body) < _PREFIX.size:
        raise _format_error(f"a binary query body is at least {_PREFIX.size} bytes; this one has {len(body)}")
    magic, length = _PREFIX.unpack_from(body)
    if magic != _QUERY_MAGIC:
        raise _format_error(f"a binary query body starts with {_QUERY_MAGIC!r}, not {magic!r}")
    end = _PREFIX.size + length
    if end > len(body):
        raise _format_error(f"the header is said to be {length} bytes, but only {len(body) - _PREFIX.size} follow")
    try:
        header = json.loads(body[_PREFIX.size : end])
    except (ValueError, RecursionError):
        raise _format_error("the header is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise _format_error("the header must be a JSON object")
    return header, end


def _whole(header: dict[str, Any], name: str) -> int:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _format_error(f"the header's {name!r} must be a whole number of at least 1, not {value!r}")
    return value


def _optional(header: dict[str, Any], name: str, kind: type) -> Any:
    value = header.get(name)
    if value is not None and not isinstance(value, kind):
        raise ApiError("invalid_request", f"invalid request: {name}: must be a JSON {kind.__name__}, not {value!r}.")
    return value


def decode_query(body: bytes, *, max_rows: int, max_dimension: int) -> QueryBody:
    """Read a :data:`QUERY_CONTENT_TYPE` body; every refusal is an :class:`ApiError` that says what was wrong.

    The vectors are only shaped here; their values (finite, no all-zero row) are checked by the caller, as the
    JSON path's are.
    """
    header, start = _header_of(body)
    unknown = sorted(set(header) - _HEADER_FIELDS)
    if unknown:
        raise ApiError("invalid_request", f"invalid request: unknown header field(s) {', '.join(unknown)}.")
    count, dimension = _whole(header, "count"), _whole(header, "dimension")
    if count > max_rows:
        raise ApiError(
            "too_many_embeddings", f"{count} embeddings in one request; the limit is {max_rows}. Split the batch."
        )
    if dimension > max_dimension:
        raise ApiError("invalid_request", f"dimension {dimension} is over the limit of {max_dimension}.")
    expected = count * dimension * _F32.itemsize
    if len(body) - start != expected:
        raise _format_error(
            f"the header says {count} x {dimension} float32 values ({expected} bytes), but {len(body) - start} "
            "bytes follow it"
        )
    uris = _optional(header, "input_uris", list)
    if uris is not None and not all(isinstance(u, str) for u in uris):
        raise ApiError("invalid_request", "invalid request: input_uris: every input_uri must be a string.")
    vectors = np.frombuffer(body, dtype=_F32, count=count * dimension, offset=start).reshape(count, dimension)
    return QueryBody(vectors, uris, _optional(header, "inferences", list), _optional(header, "thresholds", dict))


# ---- the binary batch body -------------------------------------------------------------------------------------

BATCH_MAGIC = b"CHB1"


def _padded(text: bytes) -> bytes:
    # Padded with spaces (still JSON) so that the matrix starts on a 4-byte boundary of the body.
    return text + b" " * (-(len(text) + _PREFIX.size) % 4)


def encode_batch(header: BatchHeader, records: Records) -> bytes:
    """The :data:`BATCH_BINARY_TYPE` body of a batch: the prefix, the JSON header with the records' columns, the matrix.

    The header is the JSONL header line's object plus ``count`` and one list per column: ``ids``, ``input_uris``,
    ``inferences``, ``times``, and ``labels``, ``results``, ``previews`` when any record has one.
    """
    n = len(records)
    columns: dict[str, Any] = {
        **header_json(header),
        "count": n,
        "ids": list(records.ids),
        "input_uris": list(records.input_uris),
        "inferences": list(records.inferences),
        "times": [t if math.isfinite(t) else 0.0 for t in records.times],
    }
    if any(label is not None for label in records.labels):
        columns["labels"] = list(records.labels)
    if records.results:
        columns["results"] = [None if r is None else r.stored() for r in records.results]
    if records.previews:
        columns["previews"] = list(records.previews)
    matrix = np.ascontiguousarray(records.vectors, dtype=_F32).reshape(n, header.dimension)
    text = _padded(json_text(columns).encode("utf-8"))
    return b"".join((_PREFIX.pack(BATCH_MAGIC, len(text)), text, matrix.tobytes()))
