"""The Store contract: what every store must do, run against each kind of store.

A new store joins by adding one entry to ``STORES`` (a factory that opens the store for a test's private
location, and opens it again to check what survives a reopen). A server store gets the test's ``request`` too, to
reach its session's server (``postgres_url`` in ``tests/conftest.py``); its private location is a tenant of its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore, Store
from chroma_core.engine.answers import SCORES, THRESHOLDS
from chroma_core.errors import DimensionMismatchError
from chroma_core.records import BatchHeader, Records, new_batch
from chroma_core.types import TAGS, Neighbor, QueryResult

A = EmbeddingSet.from_dict({"model": "contract", "layer": "a"})
B = EmbeddingSet.from_dict({"model": "contract", "layer": "b"})
DIM = 4


def _postgres(location: Path, request: pytest.FixtureRequest, **options: int) -> Store:
    from chroma_core.engine.postgres_store import PostgresStore

    url, tenant = request.getfixturevalue("postgres_url"), location.as_posix()
    return PostgresStore(url, tenant=tenant, ann_threshold=64, **options)


#: kind -> factory(location, request) opening that kind of store over a private location (a folder for SQLite; a
#: tenant of the session's database for PostgreSQL). Adding a store to the contract is one line here.
STORES: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": lambda location, request: SQLiteStore(location, ann_threshold=64),
    "postgres": _postgres,
    # Every batch through the staging table (by default a batch of one small chunk is inserted directly), and a
    # delete past 2 holes renumbers the partition (by default 1,024 deleted rows are kept as holes).
    "postgres-staged": lambda location, request: _postgres(location, request, small_batch=0, holes_at_most=2),
}


@pytest.fixture(params=sorted(STORES))
def open_store(request, tmp_path) -> Iterator[Callable[[], Store]]:
    """Opens the test's store (again, for a reopen); every store opened is closed at the end."""
    opened: list[Store] = []

    def open_() -> Store:
        opened.append(STORES[request.param](tmp_path / "store", request))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store) -> Store:
    return open_store()


def vectors_of(start: int, n: int) -> np.ndarray:
    return np.arange(start * DIM, (start + n) * DIM, dtype=np.float32).reshape(n, DIM) + 1


def batch(es=A, mode="training", start=0, n=3, batch_id=None, uris=None, times=None, results=None, dim=DIM):
    return new_batch(
        es,
        mode,
        vectors_of(start, n)[:, :dim] if dim <= DIM else np.ones((n, dim), np.float32),
        uris or [f"/{start + i}" for i in range(n)],
        inferences=[{"i": start + i} for i in range(n)],
        labels=[f"c{(start + i) % 2}" for i in range(n)],
        times=times,
        results=results,
        batch_id=batch_id,
    )


def put(store: Store, header: BatchHeader, records: Records, complete: bool = True):
    return store.put(header, [records], complete=lambda: complete)


def result(uri: str, i: int, tags=("out_of_distribution",), recommended=True) -> QueryResult:
    return QueryResult(
        uri,
        tuple(tags),
        recommended,
        "near_duplicate" in tags,
        scores={"novelty": 0.5 + i, "nearest_similarity": 0.25, "uncertainty": None, "label_disagreement": 0.1},
        thresholds={"novelty": 0.3, "near_duplicate": 0.02, "uncertainty": 0.5, "label_disagreement": None},
        nearest=(Neighbor("/t/1", 0.75, "cat"), Neighbor("/t/2", 0.5, None)),
        set_id=A.id,
    )


# ---- sets ---------------------------------------------------------------------------------------------------------


def test_sets_are_created_listed_and_fixed_in_dimension(store):
    assert store.get_set(A.id) is None and store.list_sets() == []
    info = store.create_set(A, DIM)
    assert (info.id, info.embedding_set, info.dimension, info.training, info.production) == (A.id, dict(A.key), 4, 0, 0)
    assert info.revision == 0
    assert store.create_set(A, DIM) == info  # idempotent
    with pytest.raises(DimensionMismatchError):
        store.create_set(A, DIM + 1)
    put(store, *batch(B))
    assert [s.id for s in store.list_sets()] == [A.id, B.id]


def test_delete_set_removes_everything_for_good(open_store):
    store = open_store()
    put(store, *batch(A, n=5))
    put(store, *batch(A, "production", n=2, results=[result("/0", 0), None]))
    put(store, *batch(B, n=2))
    assert store.write_state(A.id, "k", {"v": 1})
    assert store.delete_set(A.id) is True
    assert store.delete_set(A.id) is False
    assert store.get_set(A.id) is None and [s.id for s in store.list_sets()] == [B.id]
    assert len(store.answers(A.id)) == 0 and store.records(A.id, "training") == []
    assert store.read_state(A.id, "k") is None
    again = open_store()
    assert again.get_set(A.id) is None and again.records(A.id, "production") == []
    # The same set made anew starts empty: nothing of the old one comes back.
    header, records = batch(A, start=100, n=2)
    put(again, header, records)
    assert again.get_set(A.id).training == 2
    np.testing.assert_array_equal(again.vectors(A.id, "training"), records.vectors)
    assert [r.input_uri for r in again.records(A.id, "training")] == ["/100", "/101"]
    assert again.records(B.id, "training")[1].input_uri == "/1"


# ---- writing ------------------------------------------------------------------------------------------------------


def test_a_batch_sent_twice_is_stored_once(store):
    header, records = batch(n=10)
    assert put(store, header, records).stored == 10
    again = put(store, header, records)
    assert (again.received, again.stored, again.duplicates, again.batch_already_complete) == (10, 0, 10, True)
    assert store.get_set(A.id).training == 10


def test_a_partial_batch_is_completed_without_duplicates(store):
    header, first = batch(n=5, batch_id="b")
    assert put(store, header, first, complete=False).stored == 5
    _, whole = batch(n=10, batch_id="b")
    result_ = put(store, header, whole)
    assert (result_.stored, result_.duplicates, result_.batch_already_complete) == (5, 5, False)
    assert [r.input_uri for r in store.records(A.id, "training")] == [f"/{i}" for i in range(10)]
    assert put(store, header, whole).batch_already_complete


def test_duplicate_ids_inside_one_batch_and_across_chunks(store):
    header, records = batch(n=3)
    records.ids = ["x", "x", "y"]
    _, more = batch(start=3, n=2)
    more.ids = ["y", "z"]
    out = store.put(header, [records, more], complete=lambda: True)
    # The repeats carry other vectors than the first of their id: conflicts (test_store_contract_conflicts.py).
    assert (out.received, out.stored, out.duplicates, out.conflicts) == (5, 3, 0, ("x", "y"))
    assert [r.id for r in store.records(A.id, "training")] == ["x", "y", "z"]
    np.testing.assert_array_equal(store.vectors(A.id, "training"), vectors_of(0, 5)[[0, 2, 4]])


def test_complete_is_asked_after_the_chunks_and_a_failed_stream_stores_nothing(store):
    header, records = batch(n=4)
    asked_after: list[bool] = []
    exhausted = []

    def chunks():
        yield records.__class__(
            records.vectors[:2],
            records.ids[:2],
            records.input_uris[:2],
            records.inferences[:2],
            records.labels[:2],
            records.times[:2],
        )
        yield records.__class__(
            records.vectors[2:],
            records.ids[2:],
            records.input_uris[2:],
            records.inferences[2:],
            records.labels[2:],
            records.times[2:],
        )
        exhausted.append(True)

    out = store.put(header, chunks(), complete=lambda: asked_after.append(bool(exhausted)) or False)
    assert out.stored == 4 and asked_after == [True]

    def failing():
        yield batch(start=10, n=2)[1]
        raise OSError("the connection dropped")

    with pytest.raises(OSError):
        store.put(batch(batch_id="other")[0], failing(), complete=lambda: True)
    assert store.get_set(A.id).training == 4  # all of a batch or none of it
    assert len(store.vectors(A.id, "training")) == 4


def test_dimension_mismatch_is_refused_and_modes_are_separate(store):
    put(store, *batch(n=3))
    with pytest.raises(DimensionMismatchError):
        put(store, *batch(n=3, dim=DIM + 1))
    put(store, *batch(mode="production", start=50, n=2))
    info = store.get_set(A.id)
    assert (info.training, info.production, info.dimension) == (3, 2, DIM)
    assert [r.input_uri for r in store.records(A.id, "production")] == ["/50", "/51"]


# ---- reading by row -----------------------------------------------------------------------------------------------


def test_rows_by_range_and_by_position(store):
    put(store, *batch(n=6))
    put(store, *batch(start=6, n=4))  # a second batch continues the numbering
    all_ = vectors_of(0, 10)
    np.testing.assert_array_equal(store.vectors(A.id, "training"), all_)
    np.testing.assert_array_equal(store.vectors(A.id, "training", 3, 7), all_[3:7])
    np.testing.assert_array_equal(store.vectors(A.id, "training", 8), all_[8:])
    assert store.vectors(A.id, "training", 10).shape == (0, DIM)
    assert store.vectors(A.id, "training", 5, 99).shape == (5, DIM)
    np.testing.assert_array_equal(store.vectors_at(A.id, "training", [9, 0, 4, 4]), all_[[9, 0, 4, 4]])
    records = store.records(A.id, "training", 2, 5)
    assert [(r.row, r.input_uri, r.inferences, r.label, r.result) for r in records] == [
        (2, "/2", {"i": 2}, "c0", None),
        (3, "/3", {"i": 3}, "c1", None),
        (4, "/4", {"i": 4}, "c0", None),
    ]
    assert [r.row for r in store.records_at(A.id, "training", [7, 1, 7])] == [7, 1, 7]
    assert store.records(A.id, "production") == []
    assert store.vectors("no-such-set", "training").size == 0


def test_previews_are_kept_with_their_records(store):
    header, records = new_batch(
        A, "production", vectors_of(0, 3), ["/a", "/b", "/c"], previews=["cat on a mat", None, "x"]
    )
    put(store, header, records)
    put(store, *batch(A, n=2))  # records without previews
    assert [r.preview for r in store.records(A.id, "production")] == ["cat on a mat", None, "x"]
    assert [r.preview for r in store.records_at(A.id, "production", [2])] == ["x"]
    assert [r.preview for r in store.records(A.id, "training")] == [None, None]


# ---- answers ------------------------------------------------------------------------------------------------------


def test_answers_round_trip_as_columns_and_read_by_time_window(store):
    too_small = QueryResult(
        "/p/3",
        ("insufficient_training_data",),
        False,
        False,
        {"training_size": 3.0},
        {"min_training": 20.0},
        set_id=A.id,
    )
    dup = result("/p/1", 1, tags=("near_duplicate",), recommended=False)
    given = [result("/p/0", 0, tags=("out_of_distribution", "uncertain")), dup, None, too_small]
    uris = ["/p/0", "/p/1", "/p/2", "/p/3"]
    put(store, *batch(mode="production", n=4, uris=uris, times=[10.0, 20.0, 30.0, 40.0], results=given))
    assert [r.result for r in store.records(A.id, "production")] == given
    assert [r.result for r in store.records_at(A.id, "production", [3, 0])] == [given[3], given[0]]
    answers = store.answers(A.id)
    assert answers.rows.tolist() == [0, 1, 2, 3] and answers.times.tolist() == [10.0, 20.0, 30.0, 40.0]
    assert answers.answered.tolist() == [True, True, False, True]
    assert answers.training_recommended.tolist() == [True, False, False, False]
    assert answers.not_useful.tolist() == [False, True, False, False]
    assert answers.has_tag("uncertain").tolist() == [True, False, False, False]
    assert answers.has_tag("insufficient_training_data").tolist() == [False, False, False, True]
    assert answers.tag_counts()["near_duplicate"] == 1 and set(answers.tag_counts()) == set(TAGS)
    assert answers.score("novelty")[:2].tolist() == [0.5, 1.5] and np.isnan(answers.score("uncertainty")[0])
    assert answers.threshold("near_duplicate")[0] == 0.02 and np.isnan(answers.threshold("label_disagreement")[0])
    assert answers.scores.shape == (4, len(SCORES)) and answers.thresholds.shape == (4, len(THRESHOLDS))
    assert np.isnan(answers.scores[2]).all()
    window = store.answers(A.id, since=20.0, until=40.0)
    assert window.rows.tolist() == [1, 2]
    assert store.answers(A.id, since=41.0).rows.tolist() == []
    assert store.answers(B.id).rows.tolist() == []


# ---- deleting -----------------------------------------------------------------------------------------------------


def test_delete_records_by_uri_everywhere_or_in_one_set(open_store):
    store = open_store()
    put(store, *batch(A, n=6))  # /0 ... /5
    put(store, *batch(A, "production", start=2, n=3, results=[result("/2", 2), None, result("/4", 4)]))  # /2 /3 /4
    put(store, *batch(B, n=4))  # /0 ... /3
    before = store.get_set(A.id).revision
    report = store.delete_records(["/2", "/4", "/nowhere"], set_id=A.id)
    assert (report.training, report.production, report.sets) == (2, 2, (A.id,))
    info = store.get_set(A.id)
    assert (info.training, info.production) == (4, 1) and info.revision > before
    assert store.get_set(B.id).training == 4 and store.get_set(B.id).revision == 0
    assert [(r.row, r.input_uri) for r in store.records(A.id, "training")] == [
        (0, "/0"),
        (1, "/1"),
        (2, "/3"),
        (3, "/5"),
    ]
    np.testing.assert_array_equal(store.vectors(A.id, "training"), vectors_of(0, 6)[[0, 1, 3, 5]])
    np.testing.assert_array_equal(store.vectors_at(A.id, "training", [2]), vectors_of(3, 1))
    assert [(r.row, r.input_uri, r.result) for r in store.records(A.id, "production")] == [(0, "/3", None)]
    assert store.answers(A.id).rows.tolist() == [0]
    everywhere = store.delete_records(["/0"])
    assert (everywhere.training, everywhere.production, everywhere.sets) == (2, 0, tuple(sorted([A.id, B.id])))
    reopened = open_store()
    assert [r.input_uri for r in reopened.records(A.id, "training")] == ["/1", "/3", "/5"]
    assert [r.input_uri for r in reopened.records(B.id, "training")] == ["/1", "/2", "/3"]
    np.testing.assert_array_equal(reopened.vectors(B.id, "training"), vectors_of(1, 3))
    # New rows continue after the kept ones; a batch already stored complete stays skipped.
    put(reopened, *batch(A, start=10, n=1))
    assert [r.row for r in reopened.records(A.id, "training")] == [0, 1, 2, 3]
    assert reopened.delete_records(["/nothing"]).deleted == 0
    assert reopened.get_set(A.id).revision == store.get_set(A.id).revision


def test_delete_of_every_record_of_a_set(store):
    put(store, *batch(A, n=3))
    assert store.delete_records(["/0", "/1", "/2"]).training == 3
    assert store.get_set(A.id).training == 0 and store.vectors(A.id, "training").shape == (0, DIM)
    put(store, *batch(A, start=7, n=2))
    np.testing.assert_array_equal(store.vectors(A.id, "training"), vectors_of(7, 2))


# ---- nearest neighbours -------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _wait(store: Store, set_id: str) -> None:
    wait = getattr(store, "wait_for_index", None)  # a store that builds in the background says when it is done
    if wait is not None:
        wait(set_id, 120)


def test_nearest_gives_none_or_true_candidates_and_forgets_deleted_rows(store):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    header, records = new_batch(A, "training", x, [f"/n/{i}" for i in range(300)])
    put(store, header, records)
    queries = _unit(x[:20] + 0.01 * rng.normal(size=(20, 16)).astype(np.float32))
    store.nearest(A.id, queries, 10)
    _wait(store, A.id)
    found = store.nearest(A.id, queries, 10)
    if found is None:
        pytest.skip("this store has no index of its own")
    assert found.covered == 300 and found.rows.shape == (20, 10)
    assert ((found.rows >= -1) & (found.rows < found.covered)).all()
    assert (found.rows[:, 0] == np.arange(20)).mean() >= 0.9  # each query's own near copy comes first
    assert store.nearest(A.id, queries[:0], 10).rows.shape == (0, 0)
    store.delete_records([f"/n/{i}" for i in range(10)])
    after = store.nearest(A.id, queries, 10)
    assert after is None or after.covered <= 290
    _wait(store, A.id)
    rebuilt = store.nearest(A.id, queries, 10)
    assert rebuilt is not None and rebuilt.covered == 290
    kept = store.vectors(A.id, "training")
    for q, rows in zip(queries[:10], rebuilt.rows[:10], strict=True):  # the deleted vectors are not found
        best = _unit(kept[rows[rows >= 0]]) @ q
        assert best.max() < 0.99


# ---- state --------------------------------------------------------------------------------------------------------


def test_state_round_trip(open_store):
    store = open_store()
    assert store.read_state(A.id, "calibration") is None
    store.create_set(A, DIM)
    assert store.write_state(A.id, "calibration", {"novelty": 0.25, "sample": 1000, "label": None})
    assert store.write_state(A.id, "other", {"x": [1, 2]})
    assert store.write_state(A.id, "calibration", {"novelty": 0.5})
    assert open_store().read_state(A.id, "calibration") == {"novelty": 0.5}
    assert store.read_state(A.id, "other") == {"x": [1, 2]} and store.read_state(B.id, "other") is None


# ---- random sequences against a model -----------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from([A, B]),
            st.sampled_from(["training", "production"]),
            st.lists(st.integers(0, 11), min_size=1, max_size=6),
            st.integers(0, 3),
            st.booleans(),
        ),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 11), max_size=4), st.sampled_from([None, A, B])),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_random_puts_and_deletes_match_a_simple_model(kind, ops, request):
    """Records are kept once per id, in order; deletes remove every record of a uri; vectors follow records."""
    model: dict[tuple[str, str], list[tuple[str, str, int]]] = {}  # (set, mode) -> [(id, uri, value)]
    complete_batches: set[tuple[str, str]] = set()  # (set, batch id): batch ids are unique per set
    with tempfile.TemporaryDirectory() as folder:
        store = STORES[kind](Path(folder), request)
        try:
            for op in ops:
                if op[0] == "put":
                    _, es, mode, keys, batch_no, complete = op
                    ids, uris = [f"r{k}" for k in keys], [f"/u{k % 5}" for k in keys]
                    vectors = np.array([[k, batch_no, 1, 1] for k in keys], dtype=np.float32)
                    none = [None] * len(keys)
                    records = Records(vectors, ids, uris, none, none, [0.0] * len(keys))
                    store.put(BatchHeader(f"b{batch_no}", es, mode, DIM, "t"), [records], complete=lambda c=complete: c)
                    part = model.setdefault((es.id, mode), [])
                    if (es.id, f"b{batch_no}") not in complete_batches:
                        have = {r[0] for r in part}
                        for k, rid, uri in zip(keys, ids, uris, strict=True):
                            if rid not in have:
                                part.append((rid, uri, k * 100 + batch_no))
                                have.add(rid)
                        if complete:
                            complete_batches.add((es.id, f"b{batch_no}"))
                else:
                    _, keys, es = op
                    gone = {f"/u{k % 5}" for k in keys}
                    store.delete_records(sorted(gone), set_id=None if es is None else es.id)
                    for (s, _mode), part in model.items():
                        if es is None or s == es.id:
                            part[:] = [r for r in part if r[1] not in gone]
            for (s, mode), part in model.items():
                stored = store.records(s, mode)
                assert [(r.id, r.input_uri) for r in stored] == [(r[0], r[1]) for r in part]
                assert [r.row for r in stored] == list(range(len(part)))
                assert [int(v[0]) * 100 + int(v[1]) for v in store.vectors(s, mode)] == [r[2] for r in part]
                info = store.get_set(s)
                assert (info.training if mode == "training" else info.production) == len(part)
        finally:
            store.close()
