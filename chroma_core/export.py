"""Write an embedding set, with its records and the answers given for production inputs, to one file for sharing.

Two formats, chosen by ``format`` or the file name:

- **Parquet** (``.parquet``, needs ``pyarrow``): one row per record, the embedding as a fixed-size list of
  float32, JSON columns as text, the answer's main fields as their own columns; the set's identity in the file's
  schema metadata (``chroma_export``). Written in row groups, so memory stays flat however large the set.
- **JSONL** (``.jsonl``, or ``.jsonl.gz`` gzipped): a header line, one line per record with the embedding as a list
  of numbers, and a trailer with the record count and the sha256 of every byte before it, as in batch files.

Both are written through a temporary file and renamed into place: a reader never sees half an export. The
format is specified in ``docs/export.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from chroma_core.atomic import atomic_write
from chroma_core.batch_format import ChecksummedWriter
from chroma_core.errors import ChromaError, UnknownEmbeddingSetError
from chroma_core.json_text import json_text
from chroma_core.progress import Progress, progress_bar
from chroma_core.records import MODES, Mode, Records, utc_timestamp
from chroma_core.transport.base import Transport

__all__ = ["EXPORT_VERSION", "ExportReport", "export_set"]

EXPORT_VERSION = 1
Format = Literal["parquet", "jsonl"]
_PAGE = 5000
#: Result fields that get a column of their own in Parquet (the whole answer is in ``result`` as JSON too).
_SCORES = ("novelty", "nearest_similarity", "uncertainty", "label_disagreement")

_dumps_numbers: Any
try:  # writes float32 in their shortest form (0.1, not 0.10000000149011612), and 10x faster
    import orjson

    def _dumps_numbers(vector: np.ndarray) -> str:
        return orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode("ascii")

except ImportError:  # pragma: no cover - exercised on a client-only install

    def _dumps_numbers(vector: np.ndarray) -> str:
        return json.dumps(vector.tolist(), separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    path: Path
    format: str
    set_id: str
    training: int
    production: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


def _format_of(path: Path, format: str | None) -> Format:
    if format is not None:
        if format not in ("parquet", "jsonl"):
            raise ChromaError(f"unknown export format {format!r}; use 'parquet' or 'jsonl'.")
        return format  # type: ignore[return-value]
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    raise ChromaError(
        f"cannot tell the export format from {path.name!r}; name the file .parquet or .jsonl (or .jsonl.gz), "
        "or pass format='parquet' / --format parquet."
    )


class _Pages:
    """A set's records read page by page, each page counted on the export's progress bar."""

    def __init__(self, transport: Transport, set_id: str, bar: Progress) -> None:
        self.transport, self.set_id, self.bar = transport, set_id, bar

    def __call__(self, mode: Mode, count: int) -> Iterator[Records]:
        start = 0
        while start < count:
            _, page = self.transport.records(self.set_id, mode, start, _PAGE)
            if not len(page):
                break  # the set shrank under us (a delete meanwhile); stop rather than loop
            yield page
            self.bar.update(len(page))
            start += len(page)


def export_set(
    transport: Transport,
    set_id: str,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    modes: Sequence[str] = MODES,
    overwrite: bool = False,
    progress: bool | None = None,
) -> ExportReport:
    """Write the set's records of ``modes`` to ``path`` (see the module docstring); returns what was written.

    ``progress``: a bar on a terminal (None, the default), never (False) or always (True).

    >>> export_set(transport, set_id, "triage.parquet", modes=["production"])  # doctest: +SKIP
    """
    target = Path(path)
    fmt = _format_of(target, format)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ChromaError(f"modes must be some of {list(MODES)}, got {list(modes)!r}.")
    if target.exists() and not overwrite:
        raise ChromaError(f"{str(target)!r} already exists; choose another name, or pass overwrite=True (--force).")
    info = transport.get_set(set_id)
    if info is None:
        raise UnknownEmbeddingSetError(set_id)
    counts = {m: (info.training if m == "training" else info.production) for m in modes}
    meta = {
        "chroma_export": EXPORT_VERSION,
        "set_id": set_id,
        "embedding_set": info.embedding_set,
        "dimension": info.dimension,
        "counts": counts,
        "created_at": utc_timestamp(),
    }
    with (
        atomic_write(target, overwrite=overwrite) as raw,
        progress_bar(sum(counts.values()), f"exporting {target.name}", progress=progress) as bar,
    ):
        pages = _Pages(transport, set_id, bar)
        if fmt == "parquet":
            written = _write_parquet(raw, pages, meta, counts)
        else:
            written = _write_jsonl(raw, pages, meta, counts, gzipped=target.name.endswith(".gz"))
    return ExportReport(
        target, fmt, set_id, written.get("training", 0), written.get("production", 0), target.stat().st_size
    )


def _write_jsonl(
    raw: BinaryIO, pages: _Pages, meta: dict[str, Any], counts: dict[str, int], *, gzipped: bool
) -> dict[str, int]:
    out = ChecksummedWriter(raw, compress=gzipped)
    out.write(json.dumps(meta, separators=(",", ":"), ensure_ascii=False) + "\n")
    written: dict[str, int] = {}
    total = 0
    for mode, count in counts.items():
        n = 0
        for page in pages(mode, count):  # type: ignore[arg-type]
            lines = []
            for i in range(len(page)):
                answer = page.result(i)
                result = None if answer is None else answer.stored()
                lines.append(
                    f'{{"mode":"{mode}","id":{json_text(page.ids[i])},"input_uri":{json_text(page.input_uris[i])},'
                    f'"preview":{json_text(page.preview(i))},"embedding":{_dumps_numbers(page.vectors[i])},"inferences":{json_text(page.inferences[i])},'
                    f'"label":{json_text(page.labels[i])},"time":{page.times[i]},"result":{json_text(result)}}}\n'
                )
            out.write("".join(lines))
            n += len(page)
        written[mode] = n
        total += n
    out.finish(total, EXPORT_VERSION)
    return written


def _write_parquet(raw: BinaryIO, pages: _Pages, meta: dict[str, Any], counts: dict[str, int]) -> dict[str, int]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise ChromaError(
            "Parquet export needs pyarrow: pip install 'chroma-ml[export]' (or pyarrow), or export to .jsonl."
        ) from None
    dim = int(meta["dimension"])
    nullable_f64 = pa.float64()
    schema = pa.schema(
        [
            ("mode", pa.dictionary(pa.int8(), pa.string())),
            ("id", pa.string()),
            ("input_uri", pa.string()),
            ("preview", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("inferences", pa.string()),
            ("label", pa.string()),
            # UTC, but without a tz in the type: reading tz-aware timestamps back into Python segfaults in a
            # process that has imported usearch (pyarrow 25, usearch 2.26), as a Chroma user's process often has.
            ("time", pa.timestamp("us")),
            ("recommendation", pa.string()),
            ("training_recommended", pa.bool_()),
            ("not_useful", pa.bool_()),
            ("recommendations", pa.list_(pa.string())),
            *[(name, nullable_f64) for name in _SCORES],
            ("result", pa.string()),
        ],
        metadata={"chroma_export": json.dumps(meta, ensure_ascii=False)},
    )
    written: dict[str, int] = {}
    with pq.ParquetWriter(raw, schema, compression="zstd") as writer:
        for mode, count in counts.items():
            n = 0
            for page in pages(mode, count):  # type: ignore[arg-type]
                answers = [None if r is None else r.stored() for r in map(page.result, range(len(page)))]

                def each(get: Any, answers: list[Any] = answers) -> list[Any]:
                    return [None if a is None else get(a) for a in answers]

                columns = {
                    "mode": pa.array([mode] * len(page)).dictionary_encode().cast(schema.field("mode").type),
                    "id": pa.array(page.ids, pa.string()),
                    "input_uri": pa.array(page.input_uris, pa.string()),
                    "preview": pa.array([page.preview(i) for i in range(len(page))], pa.string()),
                    "embedding": pa.FixedSizeListArray.from_arrays(
                        pa.array(np.ascontiguousarray(page.vectors, dtype=np.float32).reshape(-1)), dim
                    ),
                    "inferences": pa.array([_json_or_none(v) for v in page.inferences], pa.string()),
                    "label": pa.array([_json_or_none(v) for v in page.labels], pa.string()),
                    "time": pa.array((np.asarray(page.times, dtype=np.float64) * 1e6).astype(np.int64)).cast(
                        pa.timestamp("us")
                    ),
                    "recommendation": pa.array(each(lambda a: a.get("recommendation")), pa.string()),
                    "training_recommended": pa.array(each(lambda a: bool(a.get("training_recommended"))), pa.bool_()),
                    "not_useful": pa.array(each(lambda a: bool(a.get("not_useful"))), pa.bool_()),
                    "recommendations": pa.array(
                        each(lambda a: list(a.get("recommendations", []))), pa.list_(pa.string())
                    ),
                    **{
                        name: pa.array(each(lambda a, name=name: (a.get("scores") or {}).get(name)), nullable_f64)
                        for name in _SCORES
                    },
                    "result": pa.array(each(json_text), pa.string()),
                }
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                n += len(page)
            written[mode] = n
    return written


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json_text(value)
