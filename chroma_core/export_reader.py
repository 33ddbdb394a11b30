"""Reading an export back (``chroma import``, ``chroma inspect``): the JSONL and Parquet files ``chroma export`` writes.

An export names its set in its header (JSONL's first line, Parquet's schema metadata) and holds records of both
modes with their original record ids, answers and previews. Importing uploads them as batches whose ids are derived
from the records they hold, so importing a file twice stores nothing twice. As with batch files, a bad line is
reported with its line number and never costs its good neighbours, and a JSONL export's trailer (count and
sha256) tells a truncated or edited file.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from chroma_core.batch_format import Problem
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import BatchFormatError, ChromaError
from chroma_core.json_text import loads
from chroma_core.progress import progress_bar
from chroma_core.records import MODES, PREVIEW_MAX, BatchHeader, Mode, Records, utc_timestamp
from chroma_core.transport.base import Transport
from chroma_core.types import QueryResult, UploadReport

__all__ = ["ExportHeader", "ExportReader", "import_export", "is_export"]

_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class ExportHeader:
    """What an export says about itself."""

    set_id: str
    embedding_set: EmbeddingSet
    dimension: int
    counts: dict[str, int]
    created_at: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "embedding_set": dict(self.embedding_set.key),
            "dimension": self.dimension,
            "counts": self.counts,
            "created_at": self.created_at,
            "format": self.format,
        }


def is_export(path: str | os.PathLike[str]) -> bool:
    """True for a file ``chroma export`` wrote (Parquet by its magic bytes, JSONL by its first line)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PAR1":
                return True
            f.seek(0)
            stream: Any = gzip.GzipFile(fileobj=f) if f.read(2) == b"\x1f\x8b" else f
            f.seek(0)
            return b'"chroma_export"' in stream.readline(1 << 16)
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _header(meta: Any, name: str, fmt: str) -> ExportHeader:
    if not isinstance(meta, dict) or "chroma_export" not in meta:
        raise BatchFormatError(f"{name}: not a Chroma export (no 'chroma_export' header); see docs/export.md.")
    if meta["chroma_export"] != 1:
        raise BatchFormatError(f"{name}: export version {meta['chroma_export']!r} is not supported; upgrade chroma.")
    try:
        embedding_set = EmbeddingSet.from_dict(meta["embedding_set"])
        dimension = int(meta["dimension"])
    except (KeyError, TypeError, ValueError, ChromaError) as exc:
        raise BatchFormatError(f"{name}: the export's header is damaged ({exc}).") from None
    if meta.get("set_id") not in (None, embedding_set.id):
        raise BatchFormatError(f"{name}: the header's set_id does not match its embedding_set.")
    counts = {str(k): int(v) for k, v in (meta.get("counts") or {}).items()}
    return ExportHeader(embedding_set.id, embedding_set, dimension, counts, str(meta.get("created_at", "")), fmt)


class ExportReader:
    """Streams an export: the header at once, then ``(mode, Records)`` chunks; ``problems`` once exhausted."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.problems: list[Problem] = []
        try:
            with open(self.path, "rb") as f:
                parquet = f.read(4) == b"PAR1"
        except OSError as exc:
            raise BatchFormatError(f"{self.name}: cannot be opened ({exc}).") from None
        self.format = "parquet" if parquet else "jsonl"
        self.header = self._parquet_header() if parquet else self._jsonl_header()

    # ---- JSONL -------------------------------------------------------------------------------------------------

    def _open(self) -> IO[bytes]:
        handle = open(self.path, "rb")  # noqa: SIM115 - closed by the caller
        if handle.read(2) == b"\x1f\x8b":
            handle.seek(0)
            return gzip.GzipFile(fileobj=handle)  # type: ignore[return-value]
        handle.seek(0)
        return handle

    def _jsonl_header(self) -> ExportHeader:
        with self._open() as f:
            first = f.readline()
        try:
            meta = loads(first)
        except ValueError:
            raise BatchFormatError(f"{self.name}: line 1 is not JSON; is this a Chroma export?") from None
        return _header(meta, self.name, "jsonl")

    def _jsonl_chunks(self) -> Iterator[tuple[Mode, Records]]:
        digest = hashlib.sha256()
        rows: list[dict[str, Any]] = []
        mode: Mode | None = None
        seen_trailer = False
        lines = 0
        with self._open() as f:
            for number, raw in enumerate(f, start=1):
                if number == 1:
                    digest.update(raw)
                    continue
                try:
                    obj = loads(raw)
                except ValueError as exc:
                    digest.update(raw)
                    self.problems.append(Problem(number, f"not valid JSON ({exc})"))
                    continue
                if isinstance(obj, dict) and "chroma_trailer" in obj:
                    seen_trailer = True
                    if obj.get("count") != lines or obj.get("sha256") != digest.hexdigest():
                        self.problems.append(Problem(number, "count or checksum mismatch: the file was edited"))
                    continue
                digest.update(raw)
                lines += 1
                row_mode = obj.get("mode") if isinstance(obj, dict) else None
                if row_mode not in MODES:
                    self.problems.append(Problem(number, "'mode' must be 'training' or 'production'"))
                    continue
                if rows and (row_mode != mode or len(rows) >= _CHUNK):
                    yield self._flush(mode, rows)  # type: ignore[arg-type]
                    rows = []
                mode = row_mode
                rows.append({**obj, "_line": number})
        if rows:
            yield self._flush(mode, rows)  # type: ignore[arg-type]
        if not seen_trailer:
            self.problems.append(Problem(0, "no trailer line: the export is truncated"))

    def _flush(self, mode: Mode, rows: list[dict[str, Any]]) -> tuple[Mode, Records]:
        good: list[dict[str, Any]] = []
        for row in rows:
            try:
                good.append(self._check(row))
            except ValueError as exc:
                self.problems.append(Problem(row["_line"], str(exc)))
        return mode, self._records(good)

    def _check(self, row: dict[str, Any]) -> dict[str, Any]:
        uri, rid = row.get("input_uri"), row.get("id")
        if not isinstance(uri, str) or not uri or not isinstance(rid, str) or not rid:
            raise ValueError("'id' and 'input_uri' must be non-empty strings")
        emb = row.get("embedding")
        if not isinstance(emb, list) or len(emb) != self.header.dimension:
            raise ValueError(f"'embedding' must be a list of {self.header.dimension} numbers")
        vector = np.asarray(emb, dtype=np.float32)
        if not np.isfinite(vector).all():
            raise ValueError("'embedding' holds NaN or infinite values")
        t = row.get("time", 0.0)
        if not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError("'time' must be a number")
        preview = row.get("preview")
        if preview is not None and (not isinstance(preview, str) or len(preview) > PREVIEW_MAX):
            raise ValueError(f"'preview' must be a string of at most {PREVIEW_MAX} characters")
        answer = row.get("result")
        result = None
        if answer is not None:
            try:
                result = QueryResult.from_dict({**answer, "input_uri": uri, "set_id": self.header.set_id})
            except (TypeError, KeyError, ValueError):
                raise ValueError("'result' is not an answer Chroma gave") from None
        return {**row, "vector": vector, "time": float(t), "result": result}

    @staticmethod
    def _records(rows: list[dict[str, Any]]) -> Records:
        dim = len(rows[0]["vector"]) if rows else 0
        vectors = np.stack([r["vector"] for r in rows]) if rows else np.empty((0, dim), np.float32)
        results = [r["result"] for r in rows]
        previews = [r.get("preview") for r in rows]
        return Records(
            vectors,
            [r["id"] for r in rows],
            [r["input_uri"] for r in rows],
            [r.get("inferences") for r in rows],
            [r.get("label") for r in rows],
            [r["time"] for r in rows],
            [r.get("_line", 0) for r in rows],
            results if any(x is not None for x in results) else [],
            previews if any(p is not None for p in previews) else [],
        )

    # ---- Parquet -----------------------------------------------------------------------------------------------

    def _parquet(self) -> Any:
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped]
        except ImportError:
            raise ChromaError("reading a Parquet export needs pyarrow: pip install 'chroma-ml[export]'.") from None
        return pq.ParquetFile(self.path)

    def _parquet_header(self) -> ExportHeader:
        try:
            metadata = self._parquet().schema_arrow.metadata or {}
            meta = loads(metadata.get(b"chroma_export", b"null"))
        except ChromaError:
            raise
        except Exception as exc:  # pyarrow's own errors for a damaged file
            raise BatchFormatError(f"{self.name}: cannot be read as Parquet ({exc}).") from None
        return _header(meta, self.name, "parquet")

    def _parquet_chunks(self) -> Iterator[tuple[Mode, Records]]:
        columns = ["mode", "id", "input_uri", "preview", "embedding", "inferences", "label", "time", "result"]
        for batch in self._parquet().iter_batches(batch_size=_CHUNK, columns=columns):
            data = batch.to_pydict()
            times = batch.column("time").cast("int64").to_numpy(zero_copy_only=False) / 1e6
            rows = [
                {
                    "mode": data["mode"][i],
                    "id": data["id"][i],
                    "input_uri": data["input_uri"][i],
                    "preview": data["preview"][i],
                    "embedding": data["embedding"][i],
                    "inferences": None if data["inferences"][i] is None else loads(data["inferences"][i]),
                    "label": None if data["label"][i] is None else loads(data["label"][i]),
                    "time": float(times[i]),
                    "result": None if data["result"][i] is None else loads(data["result"][i]),
                    "_line": 0,
                }
                for i in range(batch.num_rows)
            ]
            for mode in MODES:
                part = [r for r in rows if r["mode"] == mode]
                if part:
                    yield self._flush(mode, part)

    def chunks(self) -> Iterator[tuple[Mode, Records]]:
        """The good records, by mode, in chunks; bad ones go to ``problems``."""
        yield from self._parquet_chunks() if self.format == "parquet" else self._jsonl_chunks()


def import_export(
    transport: Transport, path: str | os.PathLike[str], *, progress: bool | None = None
) -> tuple[ExportHeader, list[UploadReport]]:
    """Upload an export's records to ``transport``: the same set, ids, answers and previews; idempotent."""
    reader = ExportReader(path)
    reports = []
    total = sum(reader.header.counts.values()) or None
    with progress_bar(total, f"importing {reader.name}", progress=progress) as bar:
        for mode, records in reader.chunks():
            if not len(records):
                continue
            # The batch id follows from what it holds, so a second import of the file is a duplicate of the first.
            key = f"{reader.header.set_id}\0{mode}\0{records.ids[0]}\0{records.ids[-1]}\0{len(records)}"
            batch_id = "import-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:24]
            es, dim = reader.header.embedding_set, reader.header.dimension
            reports.append(transport.upload(BatchHeader(batch_id, es, mode, dim, utc_timestamp()), records))
            bar.update(len(records))
    problems = tuple(str(p) for p in reader.problems)
    if problems and reports:
        last = reports[-1]
        reports[-1] = dataclasses.replace(last, problems=problems)
    elif problems:
        reports.append(UploadReport("", reader.header.set_id, "", 0, 0, 0, problems))
    return reader.header, reports
