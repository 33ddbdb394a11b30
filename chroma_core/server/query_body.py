"""A query's body, in either form the service takes, read within the limits into one :class:`QueryRequest`.

``application/json`` (``QueryIn``: embeddings as base64 or lists of numbers) or :data:`~chroma_core.server.wire.
QUERY_CONTENT_TYPE` (raw little-endian float32 after a small JSON header), chosen by ``Content-Type``; a body with
no type is read as JSON, as it always was. Any other type is a 415, which tells a client that speaks the binary
form to an older server (or this one to a client it does not know) which form to send. Both forms are bounded by
``max_json_bytes`` (what arrives, and what gzip expands to) and go through the same checks: finite values, no
all-zero row, one dimension, the server's row and dimension limits.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError
from starlette.requests import Request

from chroma_core.errors import InvalidEmbeddingError
from chroma_core.server.body import read_json_body
from chroma_core.server.schema import QueryIn
from chroma_core.server.settings import Limits
from chroma_core.server.wire import QUERY_CONTENT_TYPE, ApiError, decode_query
from chroma_core.types import QueryRequest, Thresholds
from chroma_core.vectors import Matrix, decode_base64, to_matrix

__all__ = ["QUERY_REQUEST_BODY", "query_kind", "query_request", "read_query_body"]

#: The request body of ``POST /v1/sets/{set_id}/query`` in the OpenAPI document: both forms.
QUERY_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            f"JSON (application/json), or {QUERY_CONTENT_TYPE}: b'CHQ1', the header's length (uint32 LE), a JSON "
            "header {count, dimension, input_uris?, inferences?, thresholds?}, then count x dimension float32 LE"
        ),
        "content": {
            "application/json": {"schema": QueryIn.model_json_schema()},
            QUERY_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def query_kind(headers: Mapping[str, str]) -> str:
    """``"binary"`` or ``"json"`` by the Content-Type; any other type is refused (415) before the body is read."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == QUERY_CONTENT_TYPE:
        return "binary"
    if not ctype or ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json")):
        return "json"
    raise ApiError(
        "unsupported_media_type",
        f"a query is sent as application/json or {QUERY_CONTENT_TYPE}, not {ctype!r}.",
    )


async def read_query_body(request: Request, limits: Limits) -> bytes:
    """The whole body in memory (gzip undone), refused as soon as it passes ``max_json_bytes``."""
    try:
        return await read_json_body(request, limits)
    except ApiError as exc:
        if exc.code != "payload_too_large" or "JSON body" not in str(exc):
            raise
        # The same limit and advice, without calling a binary body JSON.
        raise ApiError("payload_too_large", str(exc).replace("JSON body", "query body")) from None


def _validation_message(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request: body: malformed"
    where = ".".join(str(p) for p in ("body", *errors[0]["loc"]))
    return f"invalid request: {where}: {errors[0]['msg']}"


def _all_base64(embeddings: list[str | list[float]], max_dimension: int) -> np.ndarray | None:
    """A body of base64 rows of one dimension decoded in one go, checked once as a matrix (42 ms -> a few for
    1,000 x 384); None whenever the row-by-row path below must say what is wrong."""
    texts = [e for e in embeddings if isinstance(e, str)]
    if len(texts) != len(embeddings):
        return None
    try:
        raw = [binascii.a2b_base64(e, strict_mode=True) for e in texts]
    except (binascii.Error, ValueError):
        return None
    size = len(raw[0])
    if not size or size % 4 or size // 4 > max_dimension or any(len(r) != size for r in raw):
        return None
    return np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), size // 4)


def _json_vectors(embeddings: list[str | list[float]], limits: Limits) -> Matrix:
    if len(embeddings) > limits.max_embeddings_per_request:
        raise ApiError(
            "too_many_embeddings",
            f"{len(embeddings)} embeddings in one request; the limit is {limits.max_embeddings_per_request}. "
            "Split the batch.",
        )
    fast = _all_base64(embeddings, limits.max_dimension)
    if fast is not None:
        return to_matrix(fast, batch=True)
    rows = []
    for e in embeddings:
        v = decode_base64(e) if isinstance(e, str) else to_matrix(e, batch=False)[0]
        if len(v) > limits.max_dimension:
            raise ApiError("invalid_request", f"dimension {len(v)} is over the limit of {limits.max_dimension}.")
        rows.append(v)
    if len({len(r) for r in rows}) > 1:
        raise InvalidEmbeddingError("the embeddings in one request must all have the same dimension.")
    return to_matrix(np.stack(rows), batch=True)


def query_request(set_id: str, kind: str, body: bytes, limits: Limits) -> QueryRequest:
    """The :class:`QueryRequest` a body asks for (``kind`` from :func:`query_kind`)."""
    uris: list[str] | None
    inferences: list[Any] | None
    thresholds: dict[str, Any] | None
    if kind == "binary":
        decoded = decode_query(body, max_rows=limits.max_embeddings_per_request, max_dimension=limits.max_dimension)
        vectors = to_matrix(decoded.vectors, batch=True)  # the same checks, and messages, as every other path
        uris, inferences, thresholds = decoded.input_uris, decoded.inferences, decoded.thresholds
    else:
        try:
            parsed = QueryIn.model_validate_json(body or b"null")
        except ValidationError as exc:
            raise ApiError("invalid_request", _validation_message(exc)) from None
        vectors = _json_vectors(parsed.embeddings, limits)
        uris, inferences, thresholds = parsed.input_uris, parsed.inferences, parsed.thresholds
    if uris is None:
        uris = [f"query-{i}" for i in range(len(vectors))]
    infs = None if inferences is None else tuple(inferences)
    return QueryRequest(set_id, vectors, tuple(uris), infs, Thresholds.coerce(thresholds))
