"""Reading request bodies within the server's :class:`Limits`.

Every limit on what a body may cost the server is enforced here, in one place: its size as it arrives and after
gzip is undone, how long the client may pause while sending it, and, for batch uploads, the length of a line
(it follows from the header's dimension), the header's dimension itself and the number of bad lines. A batch is
held in memory while it is small (``MEMORY_BODY_BYTES``) and the bodies this process holds in memory stay within
``MEMORY_BODIES_BYTES`` in all; any other is streamed to a spool file on disk while its bytes are counted. A JSON
body is held in memory only up to ``max_json_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import tempfile
import threading
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO

from starlette.requests import Request

from chroma_core.server.settings import MIB, Limits
from chroma_core.server.wire import BATCH_CONTENT_TYPES, ApiError

__all__ = [
    "MEMORY_BODIES_BYTES",
    "MEMORY_BODY_BYTES",
    "BoundedLines",
    "check_batch_headers",
    "read_json_body",
    "spooled_body",
]

_ENCODINGS = ("identity", "gzip", "")


def _encoding(headers: Mapping[str, str]) -> str:
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _ENCODINGS:
        raise ApiError("unsupported_media_type", f"Content-Encoding {encoding!r} is not supported; use gzip.")
    return encoding


def _check_declared(headers: Mapping[str, str], limit: int, advice: str) -> None:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("payload_too_large", f"the body is {declared} bytes; the limit is {limit}. {advice}")


def check_batch_headers(headers: Mapping[str, str], limits: Limits) -> None:
    """Refuse a batch upload by its headers alone: wrong media type or encoding, or a declared size over the limit."""
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in BATCH_CONTENT_TYPES:
        raise ApiError(
            "unsupported_media_type",
            f"a batch upload must be sent as {BATCH_CONTENT_TYPES[0]} (got {ctype or 'no content type'!r}).",
        )
    _encoding(headers)
    _check_declared(headers, limits.max_body_bytes, "Split the batch.")


def _stopped_arriving(timeout: float) -> ApiError:
    return ApiError("request_timeout", f"the body stopped arriving for {timeout:g} s; send it again without pausing.")


if sys.version_info >= (3, 11):

    async def _pieces(request: Request, timeout: float) -> AsyncIterator[bytes]:
        """The body as it arrives; ``request_timeout`` when the client pauses longer than ``timeout`` seconds."""
        # One deadline moved on before each piece: asyncio.wait_for would start a Task for every piece, which
        # was a tenth of a small query's cost on the event loop. The deadline is off while the piece is handed
        # on, so the reader's own work is never timed.
        stream = request.stream().__aiter__()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    deadline.reschedule(loop.time() + timeout)
                    try:
                        piece = await stream.__anext__()
                    except StopAsyncIteration:
                        return
                    deadline.reschedule(None)
                    yield piece
        except TimeoutError:
            raise _stopped_arriving(timeout) from None

else:  # Python 3.10: no asyncio.timeout

    async def _pieces(request: Request, timeout: float) -> AsyncIterator[bytes]:
        """The body as it arrives; ``request_timeout`` when the client pauses longer than ``timeout`` seconds."""
        stream = request.stream().__aiter__()
        while True:
            try:
                piece = await asyncio.wait_for(stream.__anext__(), timeout)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise _stopped_arriving(timeout) from None
            yield piece


async def read_json_body(request: Request, limits: Limits) -> bytes:
    """A JSON body in memory, gzip undone, never more than ``max_json_bytes`` of it (``payload_too_large``)."""
    limit = limits.max_json_bytes
    advice = "Send fewer embeddings per request (the Python client splits large batches itself)."
    _check_declared(request.headers, limit, advice)
    gzipped = _encoding(request.headers) == "gzip"
    decoder = zlib.decompressobj(31) if gzipped else None
    out = bytearray()
    async for piece in _pieces(request, limits.body_timeout_s):
        if decoder is not None:
            try:
                piece = decoder.decompress(piece, limit + 1 - len(out))
            except zlib.error as exc:
                raise ApiError("invalid_request", f"the gzipped body cannot be decompressed ({exc}).") from None
        out += piece
        if len(out) > limit or (decoder is not None and decoder.unconsumed_tail):
            what = "decompresses to" if gzipped else "is"
            raise ApiError("payload_too_large", f"the JSON body {what} more than {limit} bytes. {advice}")
    if decoder is not None and not decoder.eof and out:
        raise ApiError("invalid_request", "the gzipped body is truncated; send it again.")
    return bytes(out)


#: The largest batch body held in memory rather than spooled to disk (the client sends parts of at most 8 MiB).
MEMORY_BODY_BYTES = 16 * MIB
#: What all the batch bodies this process holds in memory at once may come to; past it, bodies go to disk.
MEMORY_BODIES_BYTES = 64 * MIB


class _MemoryBudget:
    """Bytes of batch bodies held in memory by this process (every server in it, whatever its thread)."""

    def __init__(self) -> None:
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.held + size > MEMORY_BODIES_BYTES:
                return False
            self.held += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


_BUDGET = _MemoryBudget()


@contextlib.asynccontextmanager
async def spooled_body(request: Request, limits: Limits, spool_dir: Path) -> AsyncIterator[IO[bytes]]:
    """The body as a file, rewound; ``payload_too_large`` as soon as it passes ``max_body_bytes``.

    A small body is kept in memory (the module docstring); writing it to disk and reading it back cost the event
    loop more than parsing it. Any other is a temporary file in ``spool_dir`` (on the data's disk), private to the
    server's user. Either is gone when the block exits, however it exits (a timeout, a disconnect).
    """
    limit = limits.max_body_bytes
    pieces: list[bytes] = []
    held = 0  # bytes of ``pieces`` taken from the budget
    declared = request.headers.get("content-length", "")
    spool: IO[bytes] | None = None
    if declared.isdigit() and int(declared) > MEMORY_BODY_BYTES:  # a large body goes to disk from its first byte
        spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed below; mkstemp's mode: 0600
    try:
        total = 0
        async for chunk in _pieces(request, limits.body_timeout_s):
            total += len(chunk)
            if total > limit:
                raise ApiError("payload_too_large", f"the body exceeds the limit of {limit} bytes. Split the batch.")
            if spool is None:
                if total <= MEMORY_BODY_BYTES and _BUDGET.take(len(chunk)):
                    pieces.append(chunk)
                    held += len(chunk)
                    continue
                spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed below; mkstemp's mode: 0600
                spool.writelines(pieces)
                pieces.clear()
                _BUDGET.give(held)
                held = 0
            spool.write(chunk)
        if spool is None:
            body = io.BytesIO(pieces[0] if len(pieces) == 1 else b"".join(pieces))  # shares a bytes' buffer
            pieces.clear()
            with body:
                yield body
        else:
            spool.seek(0)
            yield spool
    finally:
        _BUDGET.give(held)
        if spool is not None:
            spool.close()


# ---- what a batch may expand to --------------------------------------------------------------------------------

#: A header line (the set's dict, batch id, mode, dimension) longer than this is not a header.
_MAX_HEADER_LINE = 64 * 1024
#: What a record line may hold beside its embedding (id, uri, inferences, label, preview, a stored answer).
_RECORD_OVERHEAD = 256 * 1024
#: The longest text of one embedding value as a JSON number ("-1.2345678901234567e-05, ").
_CHARS_PER_VALUE = 26


def max_record_line(dimension: int) -> int:
    """The longest record line a batch of this dimension may hold (its embedding as a list of numbers)."""
    return _RECORD_OVERHEAD + _CHARS_PER_VALUE * dimension


class BoundedLines:
    """The lines of a (decompressed) batch stream, refused as soon as it costs more than the limits allow.

    Over ``max_decompressed_bytes`` in all, a header line over 64 KiB, a header whose dimension is over
    ``max_dimension``, or a record line longer than its dimension allows: ``payload_too_large`` (or
    ``invalid_request`` for the dimension), raised before the line is held in memory whole, so the batch is refused
    and nothing of it is stored. Hand it to ``BatchReader`` as the stream.
    """

    def __init__(self, raw: IO[bytes], limits: Limits) -> None:
        self._raw = raw
        self._limits = limits
        self._total = 0
        self._max_line = _MAX_HEADER_LINE

    def _readline(self) -> bytes:
        line = self._raw.readline(self._max_line + 1)
        self._total += len(line)
        if self._total > self._limits.max_decompressed_bytes:
            raise ApiError(
                "payload_too_large",
                f"the batch expands to more than {self._limits.max_decompressed_bytes} bytes. Split the batch.",
            )
        if len(line) > self._max_line and not line.endswith(b"\n"):
            what = "the header line" if self._max_line == _MAX_HEADER_LINE else "a record line"
            raise ApiError(
                "payload_too_large",
                f"{what} is longer than {self._max_line} bytes, more than its dimension allows; is this a batch file?",
            )
        return line

    def __iter__(self) -> Iterator[bytes]:
        first = self._readline()
        yield first
        self._max_line = max_record_line(self._header_dimension(first))
        while line := self._readline():
            yield line

    def _header_dimension(self, first: bytes) -> int:
        # BatchReader parses the header again and says what is wrong with a bad one; only its size matters here.
        try:
            dimension = json.loads(first).get("dimension")
        except (ValueError, AttributeError):
            return 1
        limit = self._limits.max_dimension
        if isinstance(dimension, int) and dimension > limit:
            raise ApiError(
                "invalid_request", f"the batch's dimension {dimension} is over this server's limit of {limit}."
            )
        return dimension if isinstance(dimension, int) and dimension > 0 else 1

    def close(self) -> None:
        self._raw.close()
