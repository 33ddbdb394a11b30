"""The Store contract, continued: a repeated record id is a duplicate (same vector and uri: skipped silently, so a
retried upload stores once) or a conflict (other content: not stored, and named to the caller).

Runs over every store of ``STORES`` in ``test_store_contract.py``, with its factories.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chroma_core.batch_format import BatchReader, write_batch
from chroma_core.engine import Engine
from chroma_core.records import BatchHeader, Records
from chroma_core.types.reports import CONFLICTS_NAMED, UploadReport
from tests.chroma_core.engine.test_store_contract import DIM, STORES, A, batch, open_store, put, store, vectors_of

__all__ = ["open_store", "store"]  # the fixtures, shared with the contract module


def _records(ids, uris, vectors) -> Records:
    none = [None] * len(ids)
    return Records(np.asarray(vectors, dtype=np.float32), list(ids), list(uris), none, none, [0.0] * len(ids))


def test_a_retry_under_a_new_batch_id_is_all_duplicates(store):
    header, records = batch(n=6)
    assert put(store, header, records).stored == 6
    again = put(store, BatchHeader("retry", A, "training", DIM, "t"), records)
    assert (again.received, again.stored, again.duplicates, again.conflicts) == (6, 0, 6, ())
    assert not again.batch_already_complete


def test_same_id_with_another_vector_or_uri_is_a_conflict_and_the_first_is_kept(store, caplog):
    header, records = batch(n=3)
    put(store, header, records)
    changed = vectors_of(0, 3).copy()
    changed[1, 0] += 0.5  # "r1": another vector
    later = _records([*records.ids, "new"], ["/0", "/1", "/moved", "/9"], [*changed, vectors_of(9, 1)[0]])
    later.vectors[2] = vectors_of(0, 3)[2]  # the third: its vector, another uri
    with caplog.at_level(logging.WARNING, logger="chroma"):
        out = put(store, BatchHeader("later", A, "training", DIM, "t"), later)
    assert "batch later of set" in caplog.text and "2 record(s) not stored" in caplog.text  # the operator's view
    assert (out.received, out.stored, out.duplicates) == (4, 1, 1)
    assert out.conflicts == (records.ids[1], records.ids[2])
    kept = store.records(A.id, "training")
    assert [r.input_uri for r in kept] == ["/0", "/1", "/2", "/9"] and kept[3].id == "new"
    np.testing.assert_array_equal(store.vectors(A.id, "training"), np.concatenate([vectors_of(0, 3), vectors_of(9, 1)]))


def test_conflicts_inside_one_chunk_and_across_chunks(store):
    v = vectors_of(0, 4)
    first = _records(["a", "a", "b", "a"], ["/a", "/a", "/b", "/a"], [v[0], v[0], v[1], v[2]])
    second = _records(["b", "a", "b", "c"], ["/b", "/a", "/other", "/c"], [v[1], v[3], v[1], v[3]])
    out = store.put(BatchHeader("two-chunks", A, "training", DIM, "t"), [first, second], complete=lambda: True)
    # a: a repeat, then another vector; b (chunk 2): a repeat, then another uri; a (chunk 2): another vector.
    assert (out.received, out.stored, out.duplicates, out.conflicts) == (8, 3, 2, ("a", "a", "b"))
    assert [r.id for r in store.records(A.id, "training")] == ["a", "b", "c"]
    np.testing.assert_array_equal(store.vectors(A.id, "training"), v[[0, 1, 3]])


def test_a_partial_batch_completed_with_a_changed_record_reports_it(store):
    header, records = batch(n=4, batch_id="p")
    put(store, header, records.subset(range(2)), complete=False)
    records.vectors[0, 1] = -7.0  # the record already stored from the first, partial send
    out = put(store, header, records)
    assert (out.stored, out.duplicates, out.conflicts) == (2, 1, (records.ids[0],))


def test_the_upload_report_counts_conflicts_and_names_the_first_hundred(open_store, tmp_path):
    engine = Engine(open_store())
    n = CONFLICTS_NAMED + 20
    ids = [f"id{i}" for i in range(n)]
    engine.put(BatchHeader("one", A, "training", DIM, "t"), _records(ids, ids, np.ones((n, DIM))))
    path = tmp_path / "two.jsonl"
    write_batch(path, BatchHeader("two", A, "training", DIM, "t"), _records(ids, ids, np.full((n, DIM), 2.0)))
    with BatchReader(path) as reader:
        report = engine.ingest(reader)
    assert (report.read, report.stored, report.duplicates, report.conflicts) == (n, 0, 0, n)
    assert report.conflicting_ids == tuple(ids[:CONFLICTS_NAMED]) and not report.ok and report.problems == ()
    wire = report.to_dict()
    assert wire["conflicts"] == n and len(wire["conflicting_ids"]) == CONFLICTS_NAMED and wire["ok"] is False
    assert UploadReport.from_dict(wire) == report
    old_server = {k: v for k, v in wire.items() if k not in ("conflicts", "conflicting_ids")}
    assert UploadReport.from_dict(old_server).conflicts == 0  # an older server's answer still reads


# ---- random puts against a model ----------------------------------------------------------------------------------

_puts = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=8),
        st.integers(0, 3),  # batch number
        st.booleans(),  # complete
        st.integers(1, 4),  # chunk size
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(puts=_puts)
def test_random_repeats_are_duplicates_or_conflicts_as_a_model_says(kind, puts, request):
    """Each record is new, a repeat of the first record of its id, or a conflict with it; chunking changes nothing."""
    first: dict[str, tuple[str, int]] = {}  # id -> (uri, vector value) of the record stored
    complete_batches: set[str] = set()
    with tempfile.TemporaryDirectory() as folder:
        store = STORES[kind](Path(folder), request)
        try:
            for records_, batch_no, complete, size in puts:
                ids = [f"r{k}" for k, _, _ in records_]
                uris = [f"/u{k}-{u}" for k, u, _ in records_]
                values = [k * 10 + v for k, _, v in records_]
                vectors = np.array([[x, 1, 1, 1] for x in values], dtype=np.float32)
                records = _records(ids, uris, vectors)
                chunks = [records.subset(range(i, min(i + size, len(ids)))) for i in range(0, len(ids), size)]
                header = BatchHeader(f"b{batch_no}", A, "training", DIM, "t")
                out = store.put(header, chunks, complete=lambda c=complete: c)
                want_stored, want_dups, want_conflicts = 0, 0, []
                if f"b{batch_no}" in complete_batches:
                    want_dups = len(ids)
                else:
                    for rid, uri, value in zip(ids, uris, values, strict=True):
                        if rid not in first:
                            first[rid] = (uri, value)
                            want_stored += 1
                        elif first[rid] == (uri, value):
                            want_dups += 1
                        else:
                            want_conflicts.append(rid)
                    if complete:
                        complete_batches.add(f"b{batch_no}")
                assert (out.stored, out.duplicates, out.conflicts) == (want_stored, want_dups, tuple(want_conflicts))
            stored = store.records(A.id, "training")
            assert [(r.id, r.input_uri) for r in stored] == [(rid, first[rid][0]) for rid in first]
            assert [int(v[0]) for v in store.vectors(A.id, "training")] == [first[rid][1] for rid in first]
        finally:
            store.close()
