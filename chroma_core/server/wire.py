"""The service's wire contract, shared by the server and the HTTP transport; no server dependency here.

Errors are JSON ``{"error": {"code": "<stable code>", "message": "<what to do>"}}``. The codes, their HTTP
statuses, and the client-side exceptions they map back to are listed in :data:`ERRORS`.
"""

from __future__ import annotations

import ipaddress

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

__all__ = [
    "DELETE_PAGE",
    "API_PREFIX",
    "APPLICATION_HEADER",
    "BATCH_CONTENT_TYPES",
    "ERRORS",
    "IDEMPOTENCY_HEADER",
    "KEY_HEADER",
    "ApiError",
    "code_for",
    "is_loopback",
]

API_PREFIX = "/v1"
#: The most input_uris one ``POST /v1/records/delete`` takes (clients send more in pages of this size).
DELETE_PAGE = 10_000
KEY_HEADER = "X-Chroma-Api-Key"
APPLICATION_HEADER = "X-Chroma-Application-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
BATCH_CONTENT_TYPES = ("application/x-ndjson", "application/jsonl", "application/octet-stream")

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
