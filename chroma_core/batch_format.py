"""The JSONL batch file: one embedding set per file, a header, one line per record, a trailer.

::

    {"chroma_batch":1,"batch_id":"…","set_id":"…","embedding_set":{…},"mode":"training","dimension":384,
     "dtype":"float32","created_at":"2026-11-22T23:59:00.000000Z"}
    {"id":"<batch_id>:0","input_uri":"/images/123.png","embedding":"<base64 of little-endian float32>",
     "inferences":{…},"label":"cat","time":1763855940.123456}
    …
    {"chroma_trailer":1,"count":2,"sha256":"<hex digest of every byte before this line>"}

``label`` is optional; so are ``result``, the answer Chroma gave for a production input (a JSON object), and
``preview``, a short text to show for the input (at most 500 characters).
Readers also accept ``"embedding": [0.1, 0.2, …]`` and a record without ``id`` (its id
is then ``<batch_id>:<line number>``, stable across re-uploads). A file ending in ``.gz`` is written gzipped;
any gzipped file is recognised by its magic bytes when read. The full specification is ``docs/batch-format.md``.

A bad record line is reported with its line number and reason, and never costs its good neighbours.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import math
import os
from collections.abc import Iterator
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from chroma_core.atomic import atomic_write
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import BatchFormatError, ChromaError
from chroma_core.json_text import json_text, loads
from chroma_core.records import MODES, PREVIEW_MAX, BatchHeader, Records
from chroma_core.types import QueryResult

__all__ = [
    "FORMAT_VERSION",
    "BatchReader",
    "ChecksummedWriter",
    "Problem",
    "header_json",
    "open_stream",
    "parse_header",
    "read_batch",
    "write_batch",
    "write_batch_to",
]

FORMAT_VERSION = 1
_CHUNK_ROWS = 4096
# vector, id, uri, inferences, label, time, result, preview
_Row = tuple[np.ndarray, str, str, Any, Any, float, Any, str | None]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch file: the 1-based line it is on (0 for the file as a whole) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


def header_json(header: BatchHeader) -> dict[str, Any]:
    """The header line of a batch file, as a JSON object."""
    return {
        "chroma_batch": FORMAT_VERSION,
        "batch_id": header.batch_id,
        "set_id": header.set_id,
        "embedding_set": dict(header.embedding_set.key),
        "mode": header.mode,
        "dimension": header.dimension,
        "dtype": "float32",
        "created_at": header.created_at,
    }


def parse_header(obj: Any) -> BatchHeader:
    """A batch header from the JSON object of a file's first line; :class:`BatchFormatError` says what is wrong."""

    def bad(reason: str) -> BatchFormatError:
        return BatchFormatError(f"line 1: {reason}. The first line must be a batch header; see docs/batch-format.md.")

    if not isinstance(obj, dict) or "chroma_batch" not in obj:
        raise bad("not a Chroma batch header (no 'chroma_batch' key)")
    if obj["chroma_batch"] != FORMAT_VERSION:
        raise bad(
            f"format version {obj['chroma_batch']!r} is not supported (this Chroma reads version 1); upgrade chroma"
        )
    try:
        embedding_set = EmbeddingSet.from_dict(obj.get("embedding_set"))  # type: ignore[arg-type]
    except ChromaError as exc:
        raise bad(f"bad embedding_set: {exc}") from None
    if obj.get("set_id") not in (None, embedding_set.id):
        raise bad(f"set_id {obj.get('set_id')!r} does not match the embedding_set, whose id is {embedding_set.id!r}")
    mode = obj.get("mode", "training")
    if mode not in MODES:
        raise bad(f"mode must be 'training' or 'production', not {mode!r}")
    dimension = obj.get("dimension")
    if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension <= 0:
        raise bad(f"dimension must be a positive integer, not {dimension!r}")
    if obj.get("dtype", "float32") != "float32":
        raise bad(f"dtype {obj.get('dtype')!r} is not supported; embeddings are stored as float32")
    batch_id = obj.get("batch_id")
    if not isinstance(batch_id, str) or not batch_id or len(batch_id) > 128:
        raise bad("batch_id must be a non-empty string of at most 128 characters")
    return BatchHeader(batch_id, embedding_set, mode, dimension, str(obj.get("created_at", "")))


def _record_lines(header: BatchHeader, records: Records, start: int, stop: int) -> str:
    vectors = np.ascontiguousarray(records.vectors[start:stop], dtype="<f4")
    row_bytes = header.dimension * 4
    if row_bytes % 3 == 0:
        # Each row is a whole number of base64 quanta, so one encode of the chunk slices cleanly into rows.
        width = row_bytes // 3 * 4
        encoded = base64.b64encode(vectors.tobytes()).decode("ascii")
        b64 = [encoded[i * width : (i + 1) * width] for i in range(stop - start)]
    else:
        b64 = [base64.b64encode(row.tobytes()).decode("ascii") for row in vectors]
    parts = []
    for i in range(start, stop):
        label = records.labels[i]
        label_part = "" if label is None else f',"label":{json_text(label)}'
        result = records.result(i)
        if result is not None:
            label_part += f',"result":{json_text(result.stored())}'
        preview = records.preview(i)
        if preview is not None:
            label_part += f',"preview":{encode_basestring(preview)}'
        time = records.times[i]
        parts.append(
            f'{{"id":{encode_basestring(records.ids[i])},"input_uri":{encode_basestring(records.input_uris[i])},'
            f'"embedding":"{b64[i - start]}","inferences":{json_text(records.inferences[i])}{label_part},'
            f'"time":{time if math.isfinite(time) else 0.0}}}\n'
        )
    return "".join(parts)


def write_batch(
    path: str | os.PathLike[str], header: BatchHeader, records: Records, *, overwrite: bool = False
) -> Path:
    """Write a batch atomically (temp file, fsync, rename); gzip when the name ends in ``.gz``."""
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as raw:
        write_batch_to(raw, header, records, compress=target.name.endswith(".gz"))
    return target


class ChecksummedWriter:
    """Lines to a binary stream (gzip level 1 when ``compress``: embeddings barely compress), every byte digested;
    :meth:`finish` adds the trailer line that lets a reader check the file is whole. Batch files and exports."""

    def __init__(self, raw: BinaryIO, *, compress: bool = False) -> None:
        self._raw = raw
        self._out: BinaryIO | gzip.GzipFile = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) if compress else raw
        )
        self._digest = hashlib.sha256()

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._digest.update(data)
        self._out.write(data)

    def finish(self, count: int, version: int = FORMAT_VERSION) -> None:
        trailer = {"chroma_trailer": version, "count": count, "sha256": self._digest.hexdigest()}
        self._out.write((json.dumps(trailer, separators=(",", ":")) + "\n").encode("ascii"))
        if self._out is not self._raw:
            self._out.close()


def write_batch_to(raw: BinaryIO, header: BatchHeader, records: Records, *, compress: bool = False) -> None:
    """Write a batch to an open binary stream, gzipped when ``compress``."""
    out = ChecksummedWriter(raw, compress=compress)
    out.write(json.dumps(header_json(header), separators=(",", ":"), ensure_ascii=False) + "\n")
    for start in range(0, len(records), _CHUNK_ROWS):
        out.write(_record_lines(header, records, start, min(start + _CHUNK_ROWS, len(records))))
    out.finish(len(records))


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
        rid = obj.get("id")
        if rid is None:
            rid = f"{self.header.batch_id}:L{line}"
        elif not isinstance(rid, str) or not rid or len(rid) > 256:
            raise ValueError("'id' must be a non-empty string of at most 256 characters")
        t = obj.get("time", 0.0)
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise ValueError(f"'time' must be a number (seconds since the epoch), not {t!r}")
        answer = obj.get("result")
        result = None
        if answer is not None:
            try:
                result = QueryResult.from_dict({**answer, "input_uri": uri, "set_id": self.header.set_id})
            except (TypeError, KeyError, ValueError):
                raise ValueError(
                    "'result' must be a JSON object holding the answer Chroma gave for this input, or absent"
                ) from None
        preview = obj.get("preview")
        if preview is not None and (not isinstance(preview, str) or len(preview) > PREVIEW_MAX):
            raise ValueError(f"'preview' must be a string of at most {PREVIEW_MAX} characters, or absent")
        return vector, rid, uri, obj.get("inferences"), obj.get("label"), float(t), result, preview

    def chunks(self, size: int = _CHUNK_ROWS) -> Iterator[Records]:
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
        # One vectorised check per chunk; bad rows become problems, their neighbours stay.
        finite = np.asarray(np.isfinite(vectors).all(axis=1))
        nonzero = vectors.any(axis=1)
        good = finite & nonzero
        if not good.all():
            for i in np.flatnonzero(~good).tolist():
                reason = "holds NaN or infinite values" if not finite[i] else "is all zeros (it has no direction)"
                self._problem(Problem(lines[i], f"'embedding' {reason}"))
            keep = np.flatnonzero(good).tolist()
            vectors = vectors[keep]
            buf = [buf[i] for i in keep]
            lines = [lines[i] for i in keep]
            self.problems.sort(key=lambda p: (p.line == 0, p.line))
        return Records(
            vectors=vectors,
            ids=[r[1] for r in buf],
            input_uris=[r[2] for r in buf],
            inferences=[r[3] for r in buf],
            labels=[r[4] for r in buf],
            times=[r[5] for r in buf],
            lines=lines,
            results=[r[6] for r in buf] if any(r[6] is not None for r in buf) else [],
            previews=[r[7] for r in buf] if any(r[7] is not None for r in buf) else [],
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
