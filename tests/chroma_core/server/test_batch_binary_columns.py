"""The binary reader's column-at-a-time path gives exactly what its per-record path gives (server/batch_binary.py)."""

from __future__ import annotations

import gzip
import io
from typing import Any

import numpy as np
import pytest

from chroma_core.batch_reader import open_stream
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.json_text import json_text, loads
from chroma_core.records import BatchHeader, Records
from chroma_core.server.batch_binary import BinaryBatchReader
from chroma_core.server.settings import Limits
from chroma_core.server.wire import _PREFIX, BATCH_MAGIC, encode_batch
from chroma_core.types import QueryResult

DIM = 8
HEADER = BatchHeader("b-1", EmbeddingSet.from_dict({"model": "m", "layer": "l"}), "training", DIM, "t")


def _records(n: int = 12) -> Records:
    rng = np.random.default_rng(3)
    return Records(
        rng.normal(size=(n, DIM)).astype(np.float32),
        [f"r{i}" for i in range(n)],
        [f"/in/{i}" for i in range(n)],
        [{"label": "a", "score": 0.5 + i / 100} for i in range(n)],
        [None if i % 3 else "a" for i in range(n)],
        [1_760_000_000.0 + i for i in range(n)],
        previews=[f"text {i}" if i % 2 else None for i in range(n)],
    )


def _body(columns: dict[str, Any], vectors: np.ndarray) -> bytes:
    """A binary body from a header of columns as given (encode_batch always writes ids and times)."""
    text = json_text({"batch_id": HEADER.batch_id, **columns}).encode()
    return _PREFIX.pack(BATCH_MAGIC, len(text)) + text + vectors.astype("<f4").tobytes()


def _read(body: bytes, *, per_record: bool, size: int = 5) -> tuple[list[Records], list[str], bool]:
    if per_record:
        original = BinaryBatchReader._good_columns
        BinaryBatchReader._good_columns = lambda self, columns: None  # type: ignore[method-assign]
    try:
        reader = BinaryBatchReader(open_stream(io.BytesIO(body)), Limits())
        chunks = list(reader.chunks(size))
    finally:
        if per_record:
            BinaryBatchReader._good_columns = original  # type: ignore[method-assign]
    return chunks, [str(p) for p in reader.problems], reader._columns is not None


def _same(body: bytes) -> bool:
    """Both paths agree, chunk by chunk; True when the column path was taken."""
    fast, fast_problems, taken = _read(body, per_record=False)
    slow, slow_problems, _ = _read(body, per_record=True)
    assert fast_problems == slow_problems
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a.vectors, b.vectors) and a.vectors.dtype == b.vectors.dtype
        assert dataclass_fields(a) == dataclass_fields(b)
    return taken


def dataclass_fields(records: Records) -> tuple[Any, ...]:
    return (
        records.ids,
        records.input_uris,
        records.inferences,
        records.labels,
        records.times,
        records.lines,
        records.results,
        records.previews,
    )


def _header_columns(records: Records) -> dict[str, Any]:
    body = encode_batch(HEADER, records)
    (length,) = _PREFIX.unpack(body[: _PREFIX.size])[1:]
    columns: dict[str, Any] = loads(body[_PREFIX.size : _PREFIX.size + length])
    return columns


def test_a_clean_batch_takes_the_column_path_and_reads_as_the_per_record_path_does():
    records = _records()
    assert _same(encode_batch(HEADER, records))
    assert _same(gzip.compress(encode_batch(HEADER, records)))


def test_absent_ids_times_and_previews_are_filled_in_as_record_fields_fills_them():
    records = _records()
    columns = _header_columns(records)
    for absent in ("ids", "times", "previews", "labels", "inferences"):
        columns.pop(absent)
        assert _same(_body(columns, records.vectors)), absent
    chunks, _, _ = _read(_body(columns, records.vectors), per_record=False)
    assert chunks[0].ids[:2] == ["b-1:L2", "b-1:L3"] and chunks[0].times[0] == 0.0


def test_whole_number_times_become_floats():
    records = _records()
    columns = {**_header_columns(records), "times": list(range(len(records)))}
    assert _same(_body(columns, records.vectors))
    chunks, _, _ = _read(_body(columns, records.vectors), per_record=False)
    assert type(chunks[0].times[1]) is float


def test_a_bad_vector_keeps_its_neighbours_on_the_column_path():
    records = _records()
    records.vectors[1] = np.nan
    records.vectors[7] = 0.0
    assert _same(encode_batch(HEADER, records))
    _, problems, _ = _read(encode_batch(HEADER, records), per_record=False)
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 9"]


@pytest.mark.parametrize(
    "column, value",
    [
        ("input_uris", ""),
        ("input_uris", 7),
        ("ids", None),
        ("ids", ""),
        ("ids", "x" * 257),
        ("ids", 5),
        ("times", True),
        ("times", "noon"),
        ("previews", "p" * 501),
        ("previews", 3),
    ],
)
def test_a_value_the_per_record_check_would_refuse_goes_that_way(column, value):
    records = _records()
    columns = _header_columns(records)
    columns[column][4] = value
    assert not _same(_body(columns, records.vectors))
    _, problems, _ = _read(_body(columns, records.vectors), per_record=False)
    if column == "ids" and value is None:
        assert not problems  # an absent id is made from the line, on either path
    else:
        assert problems[0].startswith("line 6"), problems


def test_a_stored_answer_goes_the_per_record_way():
    records = _records()
    result = QueryResult.from_dict(
        {"input_uri": "/in/0", "recommendations": [], "training_recommended": False, "not_useful": False}
    )
    records.results = [result] + [None] * (len(records) - 1)
    assert not _same(encode_batch(HEADER, records))
