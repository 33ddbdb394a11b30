from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chroma_core.batch_format import BatchReader, read_batch, write_batch
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import BatchFormatError
from chroma_core.records import PREVIEW_MAX, BatchHeader, Records, new_batch_id, preview_of
from chroma_core.types import Neighbor, QueryResult
from tests.conftest import SET

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def make(n: int = 5, dim: int = 8, seed: int = 0, mode: str = "training") -> tuple[BatchHeader, Records]:
    rng = np.random.default_rng(seed)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), mode, dim, "2026-01-01T00:00:00.000000Z")
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    records = Records(
        vectors,
        [f"{header.batch_id}:{i}" for i in range(n)],
        [f"/images/{i}.png" for i in range(n)],
        [{"label": "cat", "score": 0.5 + i / 100} for i in range(n)],
        [None] * n,
        [1.7e9 + i for i in range(n)],
    )
    return header, records


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    dim=st.integers(1, 20),
    n=st.integers(0, 12),
    gz=st.booleans(),
)
def test_round_trip(tmp_path, data, dim, n, gz):
    vectors = data.draw(
        hnp.arrays(np.float32, (n, dim), elements=st.floats(allow_nan=False, allow_infinity=False, width=32))
    )
    vectors[~vectors.any(axis=1), 0] = 1.0  # an all-zero embedding is refused (it has no direction)
    uris = data.draw(st.lists(st.text(min_size=1, max_size=15), min_size=n, max_size=n))
    infs = data.draw(st.lists(json_values, min_size=n, max_size=n))
    labels = data.draw(st.lists(st.none() | st.text(max_size=5) | st.integers(0, 9), min_size=n, max_size=n))
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), "training", dim, "t")
    records = Records(vectors, [f"r{i}" for i in range(n)], uris, infs, labels, [float(i) for i in range(n)])
    path = tmp_path / f"{new_batch_id()}.jsonl{'.gz' if gz else ''}"
    write_batch(path, header, records)
    h2, r2, problems = read_batch(path)
    assert problems == []
    assert h2 == header
    np.testing.assert_array_equal(r2.vectors, vectors)  # bit-exact: base64 of float32
    assert r2.input_uris == uris and r2.ids == records.ids and r2.labels == labels
    assert r2.inferences == json.loads(json.dumps(infs))
    assert r2.times == records.times


def test_gzip_by_extension_and_by_magic(tmp_path):
    header, records = make()
    path = write_batch(tmp_path / "b.jsonl.gz", header, records)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    renamed = tmp_path / "b.jsonl"
    path.rename(renamed)
    assert len(read_batch(renamed)[1]) == 5


def test_numpy_values_in_inferences_are_saved(tmp_path):
    header, records = make(2)
    records.inferences = [{"score": np.float32(0.25), "logits": np.array([1.0, 2.0])}, {1, 2}]
    write_batch(tmp_path / "b.jsonl", header, records)
    assert read_batch(tmp_path / "b.jsonl")[1].inferences == [{"score": 0.25, "logits": [1.0, 2.0]}, [1, 2]]


def test_write_refuses_to_overwrite(tmp_path):
    header, records = make()
    write_batch(tmp_path / "b.jsonl", header, records)
    with pytest.raises(FileExistsError):
        write_batch(tmp_path / "b.jsonl", header, records)
    assert [p.name for p in tmp_path.iterdir()] == ["b.jsonl"]  # no temp file left behind


def lines_of(tmp_path, **kw):
    header, records = make(**kw)
    write_batch(tmp_path / "b.jsonl", header, records)
    return (tmp_path / "b.jsonl").read_bytes().splitlines(keepends=True)


def test_bad_line_is_reported_and_neighbours_kept(tmp_path):
    lines = lines_of(tmp_path)
    lines[2] = b'{"input_uri": "/x", "embedding": "@@@"}\n'
    lines[4] = b"not json\n"
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    _, records, problems = read_batch(tmp_path / "b.jsonl")
    assert records.input_uris == ["/images/0.png", "/images/2.png", "/images/4.png"]
    assert records.lines == [2, 4, 6]
    reasons = [str(p) for p in problems]
    assert any(r.startswith("line 3: 'embedding' is not valid base64") for r in reasons)
    assert any(r.startswith("line 5: not valid JSON") for r in reasons)
    assert any("checksum mismatch" in r for r in reasons)


def test_truncated_file_is_detected(tmp_path):
    data = b"".join(lines_of(tmp_path))
    (tmp_path / "b.jsonl").write_bytes(data[: len(data) - 200])
    _, records, problems = read_batch(tmp_path / "b.jsonl")
    assert len(records) == 4
    assert any("no trailer" in str(p) for p in problems)


def test_missing_trailer(tmp_path):
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines_of(tmp_path)[:-1]))
    _, records, problems = read_batch(tmp_path / "b.jsonl")
    assert len(records) == 5 and [p.line for p in problems] == [0]


def test_edited_value_fails_checksum(tmp_path):
    lines = lines_of(tmp_path)
    lines[1] = lines[1].replace(b"/images/0.png", b"/images/9.png")
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    problems = read_batch(tmp_path / "b.jsonl")[2]
    assert [str(p) for p in problems] == [
        "line 7: checksum mismatch: the file was edited or corrupted after it was written"
    ]


def test_wrong_count_and_data_after_trailer(tmp_path):
    lines = lines_of(tmp_path)
    trailer = json.loads(lines[-1])
    trailer["count"] = 99
    lines[-1] = json.dumps(trailer).encode() + b"\n"
    lines.append(b'{"extra": 1}\n')
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    reasons = [str(p) for p in read_batch(tmp_path / "b.jsonl")[2]]
    assert any("counts 99 records" in r for r in reasons)
    assert any(r.startswith("line 8: data after the trailer") for r in reasons)


def test_list_embeddings_and_missing_ids_are_accepted(tmp_path):
    head = json.dumps({"chroma_batch": 1, "batch_id": "hand", "embedding_set": SET, "dimension": 3}) + "\n"
    body = [
        json.dumps({"input_uri": "/a", "embedding": [0.1, 0.2, 0.3]}),
        json.dumps({"input_uri": "/b", "embedding": base64.b64encode(np.array([1, 2, 3], "<f4").tobytes()).decode()}),
        json.dumps({"input_uri": "/c", "embedding": [1, 2]}),
        json.dumps({"input_uri": "/d", "embedding": [1, "x", 2]}),
        json.dumps({"input_uri": "/e", "embedding": [1, 2, float("nan")]}).replace("NaN", "NaN"),
        json.dumps({"embedding": [1, 2, 3]}),
    ]
    (tmp_path / "h.jsonl").write_text(head + "\n".join(body) + "\n")
    header, records, problems = read_batch(tmp_path / "h.jsonl")
    assert header.set_id == EmbeddingSet.from_dict(SET).id and header.mode == "training"
    assert records.input_uris == ["/a", "/b"]
    assert records.ids == ["hand:L2", "hand:L3"]
    np.testing.assert_allclose(records.vectors[1], [1, 2, 3])
    assert [p.line for p in problems] == [4, 5, 6, 7, 0]
    assert "has 2 values; the header says dimension 3" in str(problems[0])


def test_gzip_truncation_is_a_problem_not_a_crash(tmp_path):
    header, records = make(200, 64)
    write_batch(tmp_path / "b.jsonl.gz", header, records)
    data = (tmp_path / "b.jsonl.gz").read_bytes()
    (tmp_path / "b.jsonl.gz").write_bytes(data[: len(data) // 2])
    _, got, problems = read_batch(tmp_path / "b.jsonl.gz")
    assert 0 < len(got) < 200
    assert problems


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"hello\n", "line 1 is not JSON"),
        (b'{"input_uri": "/a"}\n', "not a Chroma batch header"),
        (b'{"chroma_batch": 2}\n', "version 2 is not supported"),
        (b'{"chroma_batch": 1, "batch_id": "b", "embedding_set": {}, "dimension": 3}\n', "bad embedding_set"),
        (b'{"chroma_batch": 1, "batch_id": "b", "embedding_set": {"m": 1}, "dimension": 0}\n', "dimension"),
        (
            b'{"chroma_batch": 1, "batch_id": "b", "embedding_set": {"m": 1}, "set_id": "x", "dimension": 3}\n',
            "does not match",
        ),
    ],
)
def test_unusable_header(tmp_path, content, match):
    (tmp_path / "b.jsonl").write_bytes(content)
    with pytest.raises(BatchFormatError, match=match):
        BatchReader(tmp_path / "b.jsonl")


def test_missing_file():
    with pytest.raises(BatchFormatError, match="does not exist"):
        BatchReader("nope.jsonl")


def test_production_results_round_trip_and_a_bad_one_is_reported(tmp_path):
    header, records = make(n=4, mode="production")
    es_id = header.set_id
    records.results = [
        QueryResult(records.input_uris[0], ("near_duplicate",), False, True, {"novelty": 0.1}, set_id=es_id),
        None,
        QueryResult(
            records.input_uris[2], ("uncertain",), True, False, nearest=(Neighbor("/t", 0.5, "x"),), set_id=es_id
        ),
        None,
    ]
    path = write_batch(tmp_path / "p.jsonl", header, records)
    _, back, problems = read_batch(path)
    assert not problems and back.results == records.results
    # A batch where no record has a result reads back with no results at all.
    header2, plain = make(n=2)
    _, back2, _ = read_batch(write_batch(tmp_path / "t.jsonl", header2, plain))
    assert back2.results == [] and back2.result(0) is None

    lines = path.read_text().splitlines(keepends=True)
    bad = json.loads(lines[2])
    bad["result"] = "training_recommended"
    lines[2] = json.dumps(bad) + "\n"
    (tmp_path / "bad.jsonl").write_text("".join(lines))
    _, good, problems = read_batch(tmp_path / "bad.jsonl")
    assert len(good) == 3
    assert any(p.line == 3 and "'result' must be a JSON object" in p.reason for p in problems)
    bad["result"] = {"r": [1, 2]}  # an object, but not an answer
    lines[2] = json.dumps(bad) + "\n"
    (tmp_path / "bad.jsonl").write_text("".join(lines))
    assert any(p.line == 3 and "answer" in p.reason for p in read_batch(tmp_path / "bad.jsonl")[2])


def test_previews_round_trip_and_a_bad_one_is_reported(tmp_path):
    header, records = make(n=3)
    records.previews = ["a text to recognise the input by", None, 'é 日本語 "quoted"']
    path = write_batch(tmp_path / "p.jsonl", header, records)
    _, back, problems = read_batch(path)
    assert not problems and back.previews == records.previews and back.preview(1) is None
    lines = path.read_text().splitlines(keepends=True)
    bad = json.loads(lines[1])
    bad["preview"] = "x" * 501
    lines[1] = json.dumps(bad) + "\n"
    (tmp_path / "bad.jsonl").write_text("".join(lines))
    _, good, problems = read_batch(tmp_path / "bad.jsonl")
    assert len(good) == 2 and any(p.line == 2 and "'preview'" in p.reason for p in problems)


def test_preview_of_is_one_bounded_line():
    assert preview_of(None) is None
    assert preview_of("  two\n\tlines  ") == "two lines"
    long = preview_of("word " * 400)
    assert len(long) == PREVIEW_MAX and long.endswith("…")
    assert preview_of(12.5) == "12.5"


def test_an_all_zero_embedding_in_a_file_is_a_bad_line(tmp_path):
    header, records = make(n=3)
    records.vectors[1] = 0.0
    _, good, problems = read_batch(write_batch(tmp_path / "z.jsonl", header, records))
    assert len(good) == 2 and [(p.line, "all zeros" in p.reason) for p in problems] == [(3, True)]


def _garbled(tmp_path, n: int, bad: int):
    """A batch of ``n`` records whose first ``bad`` record lines are not JSON (the checksum then fails too)."""
    lines = lines_of(tmp_path, n=n)
    for i in range(1, bad + 1):
        lines[i] = b"not json\n"
    (tmp_path / "b.jsonl").write_bytes(b"".join(lines))
    return tmp_path / "b.jsonl"


def test_max_problems_keeps_the_first_and_counts_the_rest(tmp_path):
    path = _garbled(tmp_path, n=30, bad=12)  # 12 bad lines + the checksum: 13 problems
    with BatchReader(path, max_problems=3) as reader:
        records = reader.read_all()
    assert len(records) == 18 and reader.problem_count == 13
    assert [p.line for p in reader.problems[:3]] == [2, 3, 4]
    assert [str(p) for p in reader.problems[3:]] == ["... and 10 more problems"]
    with BatchReader(path) as unbounded:  # no limit: every problem is kept, and no count line is added
        unbounded.read_all()
    assert len(unbounded.problems) == unbounded.problem_count == 13


def test_max_problems_zero_still_says_there_were_problems(tmp_path):
    # The engine stores a batch as complete only when it has no problems: a reader that keeps none must not say so.
    with BatchReader(_garbled(tmp_path, n=5, bad=2), max_problems=0) as reader:
        reader.read_all()
    assert [str(p) for p in reader.problems] == ["... and 3 more problems"]
    clean = tmp_path / "clean.jsonl"
    write_batch(clean, *make(n=5))
    with BatchReader(clean, max_problems=0) as reader:
        assert len(reader.read_all()) == 5 and reader.problems == [] and reader.problem_count == 0


def test_past_max_bad_lines_the_file_is_refused_whole(tmp_path):
    path = _garbled(tmp_path, n=30, bad=12)
    refused = pytest.raises(BatchFormatError, match=r"more than 10 bad lines; the first: line 2: not valid JSON")
    for kept in (2, 0):  # keeping none, the message still names the first bad line
        with BatchReader(path, max_problems=kept, max_bad_lines=10) as reader, refused:
            reader.read_all()
    with BatchReader(path, max_bad_lines=13) as reader:  # exactly at the limit: read, with its problems
        assert len(reader.read_all()) == 18 and reader.problem_count == 13
