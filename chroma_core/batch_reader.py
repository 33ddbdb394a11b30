"""Reading a JSONL batch file (docs/batch-format.md): :class:`BatchReader` streams it, problems and all.

A bad record line is reported with its line number and reason, and never costs its good neighbours.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from chroma_core.batch_header import parse_header
from chroma_core.errors import BatchFormatError
from chroma_core.json_text import loads
from chroma_core.records import PREVIEW_MAX, BatchHeader, Records
from chroma_core.types import QueryResult

__all__ = ["CHUNK_ROWS", "BatchReader", "Problem", "open_stream", "read_batch", "record_fields"]

CHUNK_ROWS = 4096
# vector, id, uri, inferences, label, time, result, preview
#: A record's fields beside its embedding, checked (``record_fields``): id, input_uri, inferences, label, time,
#: stored answer, preview. Both upload forms turn them into Records through ``BatchReader._records``.
RecordFields = tuple[str, str, Any, Any, float, Any, "str | None"]
_Row = tuple[np.ndarray, str, str, Any, Any, float, Any, str | None]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch file: the 1-based line it is on (0 for the file as a whole) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


def record_fields(
    header: BatchHeader, line: int, rid: Any, uri: Any, t: Any, answer: Any, preview: Any
) -> tuple[str, str, float, QueryResult | None, str | None]:
    """A record's fields beside its embedding, checked; ValueError says what is wrong. Both upload forms use it."""
    if not isinstance(uri, str) or not uri:
        raise ValueError("'input_uri' is missing or not a non-empty string")
    if rid is None:
        rid = f"{header.batch_id}:L{line}"
    elif not isinstance(rid, str) or not rid or len(rid) > 256:
        raise ValueError("'id' must be a non-empty string of at most 256 characters")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        raise ValueError(f"'time' must be a number (seconds since the epoch), not {t!r}")
    result = None
    if answer is not None:
        try:
            result = QueryResult.from_dict({**answer, "input_uri": uri, "set_id": header.set_id})
        except (TypeError, KeyError, ValueError):
            raise ValueError(
                "'result' must be a JSON object holding the answer Chroma gave for this input, or absent"
            ) from None
    if preview is not None and (not isinstance(preview, str) or len(preview) > PREVIEW_MAX):
        raise ValueError(f"'preview' must be a string of at most {PREVIEW_MAX} characters, or absent")
    return rid, uri, float(t), result, preview


def _open_binary(path: Path) -> IO[bytes]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed by BatchReader
    except FileNotFoundError:
        raise BatchFormatError(f"batch file {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise BatchFormatError(f"batch file {str(path)!r} cannot be opened: {exc}") from None
    if handle.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


class BatchReader:
    """Streams a batch file: the header at once, then records in chunks, collecting problems as it goes.

    >>> with BatchReader("batch.jsonl") as reader:          # doctest: +SKIP
    ...     for chunk in reader.chunks():
    ...         store(reader.header, chunk)
    ...     print(reader.problems)

    ``problems`` is complete once ``chunks()`` is exhausted: bad lines, a missing trailer (a truncated file),
    a count or checksum that does not match (an edited file). Every problem is counted (``problem_count``); only
    the first ``max_problems`` are kept, then one last entry says how many more there were. Past
    ``max_bad_lines`` problems the file is refused whole (BatchFormatError): a file of garbage must not cost minutes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | IO[bytes],
        *,
        name: str | None = None,
        max_problems: int | None = None,
        max_bad_lines: int | None = None,
    ) -> None:
        if isinstance(path, (str, os.PathLike)):
            self.name = str(path)
            self._handle = _open_binary(Path(path))
        else:
            self.name = name or "<stream>"
            self._handle = path
        self.problems: list[Problem] = []
        self.problem_count = 0
        self._first_problem: Problem | None = None
        self._max_problems = max_problems
        self._max_bad_lines = max_bad_lines
        self._digest = hashlib.sha256()
        self._line = 0
        self._lines: Iterator[bytes] = iter(self._handle)
        self.header = self._read_header()

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def _problem(self, problem: Problem) -> None:
        self.problem_count += 1
        self._first_problem = self._first_problem or problem  # kept even when max_problems keeps none
        if self._max_bad_lines is not None and self.problem_count > self._max_bad_lines:
            raise BatchFormatError(
                f"{self.name}: more than {self._max_bad_lines} bad lines; the first: {self._first_problem}. "
                "Is this a batch file?"
            )
        if self._max_problems is None or len(self.problems) < self._max_problems:
            self.problems.append(problem)

    def _read_header(self) -> BatchHeader:
        try:
            first = next(self._lines, b"")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BatchFormatError(f"{self.name}: cannot be read ({exc}).") from None
        self._line = 1
        self._digest.update(first)
        if not first.strip():
            raise BatchFormatError(f"{self.name}: the file is empty; a batch starts with a header line.")
        try:
            obj = loads(first)
        except ValueError as exc:
            raise BatchFormatError(f"{self.name}: line 1 is not JSON ({exc}); is this a Chroma batch file?") from None
        try:
            return parse_header(obj)
        except BatchFormatError as exc:
            raise BatchFormatError(f"{self.name}: {exc}") from None

    def _record(self, obj: Any, line: int) -> _Row:
        if not isinstance(obj, dict):
            raise ValueError(f"a record must be a JSON object, not {type(obj).__name__}")
        uri = obj.get("input_uri")
        if not isinstance(uri, str) or not uri:
            raise ValueError("'input_uri' is missing or not a non-empty string")
        emb = obj.get("embedding")
        dim = self.header.dimension
        if isinstance(emb, str):
            try:
                raw = base64.b64decode(emb, validate=True)
            except ValueError as exc:
                raise ValueError(f"'embedding' is not valid base64 ({exc})") from None
            if len(raw) != dim * 4:
                raise ValueError(f"'embedding' decodes to {len(raw)} bytes; dimension {dim} needs {dim * 4}")
            vector = np.frombuffer(raw, dtype="<f4")
        elif isinstance(emb, list):
            if len(emb) != dim:
                raise ValueError(f"'embedding' has {len(emb)} values; the header says dimension {dim}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in emb):
                raise ValueError("'embedding' list must hold only numbers")
            vector = np.asarray(emb, dtype="<f4")
        else:
            raise ValueError("'embedding' is missing; give base64 of little-endian float32, or a list of numbers")
        rid, uri, t, result, preview = record_fields(
            self.header, line, obj.get("id"), uri, obj.get("time", 0.0), obj.get("result"), obj.get("preview")
        )
        return vector, rid, uri, obj.get("inferences"), obj.get("label"), t, result, preview

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Records]:
        """Yield the good records in chunks of at most ``size``; bad lines go to ``problems``."""
        dim = self.header.dimension
        buf: list[_Row] = []
        lines: list[int] = []
        seen_trailer = False
        while True:
            try:
                raw = next(self._lines, None)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                self._problem(Problem(self._line + 1, f"the file ends in a corrupt or truncated block ({exc})"))
                break
            if raw is None:
                break
            self._line += 1
            line = self._line
            if seen_trailer:
                if raw.strip():
                    self._problem(Problem(line, "data after the trailer line; the trailer must be last"))
                continue
            if not raw.endswith(b"\n"):
                # A final line without its newline is what a truncated copy looks like.
                self._problem(Problem(line, "the last line is cut off (no newline): the file is truncated"))
                self._digest.update(raw)
                continue
            try:
                obj = loads(raw)
            except ValueError as exc:
                self._digest.update(raw)
                self._problem(Problem(line, f"not valid JSON ({exc})"))
                continue
            if isinstance(obj, dict) and "chroma_trailer" in obj:
                seen_trailer = True
                self._check_trailer(obj, line)
                continue
            self._digest.update(raw)
            try:
                buf.append(self._record(obj, line))
                lines.append(line)
            except ValueError as exc:
                self._problem(Problem(line, str(exc)))
                continue
            if len(buf) >= size:
                yield self._flush(buf, lines, dim)
                buf, lines = [], []
        if buf:
            yield self._flush(buf, lines, dim)
        if not seen_trailer:
            self._problem(
                Problem(
                    0,
                    "no trailer line: the file is truncated, or was not written by Chroma's writer; "
                    "the records above were read, but their completeness cannot be checked",
                )
            )
        if self.problem_count > len(self.problems):
            self.problems.append(Problem(0, f"... and {self.problem_count - len(self.problems)} more problems"))

    def _flush(self, buf: list[_Row], lines: list[int], dim: int) -> Records:
        vectors = np.empty((len(buf), dim), dtype=np.float32)
        for i, row in enumerate(buf):
            vectors[i] = row[0]
        return self._records(vectors, [row[1:] for row in buf], lines)

    def _records(self, vectors: np.ndarray, rows: list[RecordFields], lines: list[int]) -> Records:
        """The records of these rows whose vector is usable; each other one is a problem at its line."""
        # One vectorised check per chunk; bad rows become problems, their neighbours stay.
        finite = np.asarray(np.isfinite(vectors).all(axis=1))
        nonzero = np.asarray(vectors.any(axis=1))
        good = finite & nonzero
        if not good.all():
            for i in np.flatnonzero(~good).tolist():
                reason = "holds NaN or infinite values" if not finite[i] else "is all zeros (it has no direction)"
                self._problem(Problem(lines[i], f"'embedding' {reason}"))
            keep = np.flatnonzero(good).tolist()
            vectors = vectors[keep]
            rows = [rows[i] for i in keep]
            lines = [lines[i] for i in keep]
        if self.problems:
            self.problems.sort(key=lambda p: (p.line == 0, p.line))
        return Records(
            vectors=vectors,
            ids=[r[0] for r in rows],
            input_uris=[r[1] for r in rows],
            inferences=[r[2] for r in rows],
            labels=[r[3] for r in rows],
            times=[r[4] for r in rows],
            lines=lines,
            results=[r[5] for r in rows] if any(r[5] is not None for r in rows) else [],
            previews=[r[6] for r in rows] if any(r[6] is not None for r in rows) else [],
        )

    def _check_trailer(self, obj: dict[str, Any], line: int) -> None:
        records_seen = line - 2  # every line between header and trailer should be a record
        count = obj.get("count")
        if count != records_seen:
            self._problem(
                Problem(line, f"the trailer counts {count!r} records, but the file holds {records_seen} record lines")
            )
        expected = obj.get("sha256")
        if expected != self._digest.hexdigest():
            self._problem(Problem(line, "checksum mismatch: the file was edited or corrupted after it was written"))

    def read_all(self) -> Records:
        return Records.concat(list(self.chunks()), self.header.dimension)


def read_batch(path: str | os.PathLike[str]) -> tuple[BatchHeader, Records, list[Problem]]:
    """Read a whole batch file into memory: header, good records, problems."""
    with BatchReader(path) as reader:
        records = reader.read_all()
        return reader.header, records, reader.problems


def open_stream(stream: IO[bytes]) -> IO[bytes]:
    """Wrap a seekable binary stream in a gzip reader when it starts with gzip's magic bytes."""
    start = stream.tell()
    magic = stream.read(2)
    stream.seek(start)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream
