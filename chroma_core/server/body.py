"""Reading request bodies within the server's :class:`Limits`.

A batch upload is streamed to a spool file on disk while its bytes are counted, so a large batch never sits in
memory and an over-size or broken request is refused before anything is stored. Every limit on what a body may
cost the server (its size, what it may decompress to, its lines) is enforced here, in one place.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

from starlette.requests import Request

from chroma_core.server.settings import Limits
from chroma_core.server.wire import BATCH_CONTENT_TYPES, ApiError

__all__ = ["check_batch_headers", "spooled_body"]


def check_batch_headers(headers: Mapping[str, str], limits: Limits) -> None:
    """Refuse a batch upload by its headers alone: wrong media type or encoding, or a declared size over the limit."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in BATCH_CONTENT_TYPES:
        raise ApiError(
            "unsupported_media_type",
            f"a batch upload must be sent as {BATCH_CONTENT_TYPES[0]} (got {ctype or 'no content type'!r}).",
        )
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise ApiError("unsupported_media_type", f"Content-Encoding {encoding!r} is not supported; use gzip.")
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise ApiError(
            "payload_too_large", f"the body is {declared} bytes; the limit is {limits.max_body_bytes}. Split the batch."
        )


@contextlib.asynccontextmanager
async def spooled_body(request: Request, limit: int, spool_dir: Path) -> AsyncIterator[IO[bytes]]:
    """The body as a temporary file, rewound; ``payload_too_large`` as soon as it passes ``limit`` bytes.

    The file lives in ``spool_dir`` (on the data's disk, not in memory) and is gone when the block exits.
    """
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError("payload_too_large", f"the body exceeds the limit of {limit} bytes. Split the batch.")
            spool.write(chunk)
        spool.seek(0)
        yield spool
