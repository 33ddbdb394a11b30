"""A query's bodies as the HTTP transport sends them: in pages within the service's limits, binary or JSON.

The binary form (:data:`~chroma_core.server.wire.QUERY_CONTENT_TYPE`: raw little-endian float32) is the default;
a service that does not take it answers 415 (or, before the binary form existed, 422 "not valid JSON"), and the
transport then sends that service JSON (base64 of the same bytes) for the rest of its life.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests

from chroma_core.json_text import json_text
from chroma_core.server.settings import MIB, Limits
from chroma_core.server.wire import encode_query
from chroma_core.types import QueryRequest
from chroma_core.vectors import encode_base64

__all__ = ["binary_refused", "binary_body", "json_body", "pages"]

_DEFAULTS = Limits()
#: Vector bytes in one request of each form, under the default ``max_json_bytes`` (4 MiB) with room for the uris
#: and inferences beside them; base64 in JSON takes 4/3 of the bytes.
_PAGE_BYTES = {"binary": 3 * MIB, "json": 2 * MIB}


def pages(request: QueryRequest, form: str) -> Iterator[slice]:
    """The row ranges to send one request each: at most ``max_embeddings_per_request`` rows (the default limit)."""
    per = max(1, min(_DEFAULTS.max_embeddings_per_request, _PAGE_BYTES[form] // (4 * request.vectors.shape[1])))
    for start in range(0, len(request), per):
        yield slice(start, min(start + per, len(request)))


def _inferences(request: QueryRequest, rows: slice) -> list[Any] | None:
    if request.inferences is None:
        return None
    # What user code returned (numpy scalars, NaN scores) as plain JSON values, as it is stored.
    parsed: list[Any] = json.loads(json_text(list(request.inferences[rows])))
    return parsed


def binary_body(request: QueryRequest, rows: slice) -> bytes:
    """The :data:`~chroma_core.server.wire.QUERY_CONTENT_TYPE` body for some rows of a request."""
    thresholds = request.thresholds.overrides() or None
    return encode_query(request.vectors[rows], request.input_uris[rows], _inferences(request, rows), thresholds)


def json_body(request: QueryRequest, rows: slice) -> dict[str, Any]:
    """The JSON body (``QueryIn``) for some rows of a request: what services before the binary form take."""
    payload: dict[str, Any] = {
        "embeddings": [encode_base64(v) for v in request.vectors[rows]],
        "input_uris": list(request.input_uris[rows]),
    }
    inferences = _inferences(request, rows)
    if inferences is not None:
        payload["inferences"] = inferences
    if request.thresholds.overrides():
        payload["thresholds"] = request.thresholds.overrides()
    return payload


def binary_refused(response: requests.Response) -> bool:
    """True when a service answered the binary form with "I do not take that" rather than with an answer."""
    if response.status_code == 415:
        return True
    if response.status_code != 422:
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    # Services older than the binary form parse every query body as JSON and say so.
    return bool(error.get("code") == "invalid_request" and "not valid JSON" in str(error.get("message")))
