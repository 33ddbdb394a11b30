"""Reading a :data:`~chroma_core.server.wire.BATCH_BINARY_TYPE` upload within the server's :class:`Limits`.

The body (docs/batch-format.md, "The binary upload form"): ``CHB1``, the header's length as a little-endian uint32,
the JSON header (the JSONL header line's object, ``count``, and one list per column), then ``count x dimension``
little-endian float32. :class:`BinaryBatchReader` gives the engine what :class:`BatchReader` gives it: the header,
then the good records in chunks, each bad record a problem that never costs its neighbours. A record's problem
names the line it would have in the JSONL form of the same batch (record ``i``, from 0, is line ``i + 2``).

A body whose bytes do not add up (the prefix, the header's JSON, a column's length, the matrix's length) is refused
whole (``batch_format``, 400); sizes are checked before what they describe is read (``payload_too_large``, 413).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from chroma_core.batch_header import parse_header
from chroma_core.batch_reader import CHUNK_ROWS, BatchReader, Problem, RecordFields, record_fields
from chroma_core.errors import BatchFormatError
from chroma_core.json_text import loads
from chroma_core.records import PREVIEW_MAX, Records
from chroma_core.server.settings import Limits
from chroma_core.server.wire import _PREFIX, BATCH_BINARY_TYPE, BATCH_MAGIC, ApiError

__all__ = ["BinaryBatchReader"]

# id, uri, inferences, label, time, result, preview
_COLUMNS = ("ids", "input_uris", "inferences", "times", "labels", "results", "previews")
_REQUIRED = frozenset({"input_uris"})
#: Every record's fields as columns: ids, input_uris, inferences, labels, times, previews (None: no record has one).
_Columns = tuple[list[str], list[str], list[Any], list[Any], list[float], "list[str | None] | None"]


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """A read of the (maybe gzipped) body: its failures as the batch_format error that says so."""
    try:
        yield
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise _malformed(f"the gzipped body is corrupt or truncated ({exc})") from None


def _check_length(size: int, got: int, what: str) -> None:
    if got != size:
        raise _malformed(f"the body ends inside {what}: {size} bytes were due, {got} came")


def _malformed(message: str) -> BatchFormatError:
    return BatchFormatError(f"the uploaded batch: {message} (docs/batch-format.md describes {BATCH_BINARY_TYPE}).")


class BinaryBatchReader(BatchReader):
    """The records of a binary upload, read from ``stream`` (gzip already undone) within ``limits``."""

    def __init__(self, stream: IO[bytes], limits: Limits) -> None:
        self.name = "the uploaded batch"
        self._handle = stream
        self.problems: list[Problem] = []
        self.problem_count = 0
        self._first_problem: Problem | None = None
        self._max_problems = limits.problems_reported
        self._max_bad_lines = limits.max_bad_lines
        self._limits = limits
        columns = self._read_columns()
        self.header = parse_header(columns)
        self._count = self._whole_count(columns)
        self._check_size()
        self._check_columns(columns)
        self._columns = self._good_columns(columns)
        self._meta = self._metadata(columns) if self._columns is None else []

    def _more_bytes(self) -> bool:
        try:
            return bool(self._handle.read(1))
        except (OSError, EOFError, zlib.error) as exc:
            raise _malformed(f"the gzipped body is corrupt or truncated ({exc})") from None

    # ---- the header ----------------------------------------------------------------------------------------------

    def _exactly(self, size: int, what: str) -> bytes:
        with _reading():
            data = self._handle.read(size)
        _check_length(size, len(data), what)
        return data

    def _read_columns(self) -> dict[str, Any]:
        magic, length = _PREFIX.unpack(self._exactly(_PREFIX.size, "its 8-byte prefix"))
        if magic != BATCH_MAGIC:
            raise _malformed(f"a binary batch starts with {BATCH_MAGIC!r}, not {magic!r}")
        if _PREFIX.size + length > self._limits.max_decompressed_bytes:
            raise ApiError(
                "payload_too_large",
                f"the batch's header is {length} bytes, over the limit of {self._limits.max_decompressed_bytes}. "
                "Split the batch.",
            )
        try:
            columns = loads(self._exactly(length, "its header"))
        except (ValueError, RecursionError):
            raise _malformed("the header is not valid UTF-8 JSON") from None
        if not isinstance(columns, dict):
            raise _malformed("the header must be a JSON object")
        return columns

    def _whole_count(self, columns: dict[str, Any]) -> int:
        count = columns.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _malformed(f"the header's 'count' must be a whole number, not {count!r}")
        return count

    def _check_columns(self, columns: dict[str, Any]) -> None:
        count = self._count
        for name in _COLUMNS:
            column = columns.get(name)
            if column is None and name not in _REQUIRED:
                continue
            if not isinstance(column, list) or len(column) != count:
                got = f"{len(column)} entries" if isinstance(column, list) else repr(type(column).__name__)
                raise _malformed(f"the header's {name!r} must be a list of {count} entries (one per record), not {got}")

    def _check_size(self) -> None:
        dimension = self.header.dimension
        if dimension > self._limits.max_dimension:
            raise ApiError(
                "invalid_request",
                f"the batch's dimension {dimension} is over this server's limit of {self._limits.max_dimension}.",
            )
        matrix = self._count * dimension * 4
        if matrix > self._limits.max_decompressed_bytes:
            raise ApiError(
                "payload_too_large",
                f"the batch's {self._count} x {dimension} vectors are {matrix} bytes, over the limit of "
                f"{self._limits.max_decompressed_bytes}. Split the batch.",
            )

    # ---- the columns ---------------------------------------------------------------------------------------------

    def _good_columns(self, columns: dict[str, Any]) -> _Columns | None:
        """The records' fields as they are, when each column holds only values that ``record_fields`` would pass
        unchanged (what Chroma's own client sends); None when any record needs that check, which says why."""
        # A column at a time costs a tenth of a call of record_fields per record, on every upload's hot path.
        n = self._count
        results = columns.get("results")
        if results and any(r is not None for r in results):
            return None
        previews = columns.get("previews")
        if previews is not None:
            if not all(p is None or (type(p) is str and len(p) <= PREVIEW_MAX) for p in previews):
                return None
            if all(p is None for p in previews):
                previews = None
        uris = columns["input_uris"]
        if not all(type(u) is str and u for u in uris):
            return None
        ids = columns.get("ids")
        if ids is None:
            batch_id = self.header.batch_id
            ids = [f"{batch_id}:L{line}" for line in range(2, n + 2)]
        elif not all(type(r) is str and 0 < len(r) <= 256 for r in ids):
            return None  # None among them included: record_fields names those
        times = columns.get("times")
        if times is None:
            times = [0.0] * n
        elif all(type(t) is float or type(t) is int for t in times) and all(map(math.isfinite, times)):
            times = [float(t) for t in times]
        else:
            return None
        none: list[Any] = [None] * n
        return ids, uris, columns.get("inferences") or none, columns.get("labels") or none, times, previews

    def _metadata(self, columns: dict[str, Any]) -> list[RecordFields | None]:
        """Each record's fields checked as the JSONL reader checks a line's, or None (and a problem) when bad."""
        n = self._count
        none: list[Any] = [None] * n
        ids, uris = columns.get("ids") or none, columns["input_uris"]
        inferences, labels = columns.get("inferences") or none, columns.get("labels") or none
        times, results = columns.get("times") or [0.0] * n, columns.get("results") or none
        previews = columns.get("previews") or none
        rows: list[RecordFields | None] = []
        for i in range(n):
            try:
                rid, uri, t, result, preview = record_fields(
                    self.header, i + 2, ids[i], uris[i], times[i], results[i], previews[i]
                )
            except ValueError as exc:
                self._problem(Problem(i + 2, str(exc)))
                rows.append(None)
                continue
            rows.append((rid, uri, inferences[i], labels[i], t, result, preview))
        return rows

    # ---- the matrix ----------------------------------------------------------------------------------------------

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Records]:
        """Yield the good records in chunks of at most ``size``; bad ones go to ``problems``."""
        dim = self.header.dimension
        for start in range(0, self._count, size):
            stop = min(start + size, self._count)
            vectors = self._matrix(stop - start, dim, f"the vectors of records {start}-{stop - 1}")
            chunk = self._chunk(start, vectors) if self._columns is None else self._column_chunk(start, vectors)
            if len(chunk):
                yield chunk
        if self._more_bytes():
            raise _malformed(f"bytes follow the {self._count} x {dim} vectors the header announces")
        if self.problem_count > len(self.problems):
            self.problems.append(Problem(0, f"... and {self.problem_count - len(self.problems)} more problems"))

    def _matrix(self, rows: int, dim: int, what: str) -> np.ndarray:
        """The next ``rows x dim`` float32, read straight into the array (one copy of the body's bytes, not two)."""
        out = np.empty((rows, dim), dtype="<f4")
        view, size, got = out.data.cast("B"), rows * dim * 4, 0
        with _reading():
            while got < size and (n := self._handle.readinto(view[got:])):  # type: ignore[attr-defined]
                got += n
        _check_length(size, got, what)
        return out

    def _column_chunk(self, start: int, vectors: np.ndarray) -> Records:
        assert self._columns is not None
        ids, uris, inferences, labels, times, previews = self._columns
        stop = start + len(vectors)
        lines = list(range(start + 2, stop + 2))
        shown = [] if previews is None else previews[start:stop]
        if not (np.isfinite(vectors).all() and vectors.any(axis=1).all()):
            # A bad vector: the general path says which, and keeps the others.
            none = [None] * len(vectors)
            fields = (ids, uris, inferences, labels, times)
            rows = list(zip(*(c[start:stop] for c in fields), none, shown or none, strict=True))
            return self._records(vectors, rows, lines)
        return Records(
            vectors,
            ids[start:stop],
            uris[start:stop],
            inferences[start:stop],
            labels[start:stop],
            times[start:stop],
            lines=lines,
            previews=shown if any(p is not None for p in shown) else [],
        )

    def _chunk(self, start: int, vectors: np.ndarray) -> Records:
        meta = self._meta[start : start + len(vectors)]
        # A record whose other fields are bad is a problem already (``_metadata``); its vector is not looked at.
        keep = [i for i, m in enumerate(meta) if m is not None]
        rows: list[RecordFields] = [m for i in keep if (m := meta[i]) is not None]
        if len(keep) < len(vectors):
            vectors = vectors[keep]
        return self._records(vectors, rows, [start + i + 2 for i in keep])
