"""The PostgreSQL store's HNSW indexes (``postgres_index.py``): a prefix of the training rows, rebuilt when the
rows past it grow, and an index left invalid by a cut-off ``CREATE INDEX CONCURRENTLY`` dropped and built again."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.chroma_core.engine.test_postgres_store import A, _batch, store_of

__all__ = ["store_of"]  # the fixture, shared with test_postgres_store.py

pytestmark = pytest.mark.slow
psycopg = pytest.importorskip("psycopg")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _indexes(store) -> list[tuple[str, int, bool]]:
    with store.db.pool.connection() as conn:
        return [tuple(i) for i in store.indexes.listed(conn, A.id)]


def test_the_index_covers_a_prefix_and_is_rebuilt_when_the_rest_grows(store_of):
    store = store_of(ann_threshold=200)
    header, first = _batch(n=400, batch_id="first")
    store.put(header, [first], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    base = store.indexes.base(A.id)
    assert _indexes(store) == [(f"{base}_400", 400, True)]
    more_header, more = _batch(n=50, seed=1, batch_id="more")
    store.put(more_header, [more], complete=lambda: True)  # 50 past the index: under max(200 / 2, 400 / 4)
    store.wait_for_index(A.id, 120)
    found = store.nearest(A.id, _unit(more.vectors[:4]), 5)
    assert found.covered == 400 and (found.rows < 400).all()
    last_header, last = _batch(n=60, seed=2, batch_id="last")
    store.put(last_header, [last], complete=lambda: True)  # 110 past it: a new index over all 510, the old dropped
    assert store.wait_for_index(A.id, 120)
    assert _indexes(store) == [(f"{base}_510", 510, True)]
    found = store.nearest(A.id, _unit(last.vectors[:3]), 5)
    assert found.covered == 510 and found.rows[:, 0].tolist() == [450, 451, 452]


def test_several_queries_in_one_call_get_each_its_own_neighbours(store_of):
    store = store_of(ann_threshold=100)
    header, records = _batch(n=300, dim=16)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    rows = [5, 250, 17, 5, 99]  # a query repeated gets the same answer twice
    found = store.nearest(A.id, _unit(records.vectors[rows]), 4)
    assert found.rows.shape == (5, 4) and found.rows[:, 0].tolist() == rows
    exact = np.argsort(-(_unit(records.vectors[rows]) @ _unit(records.vectors).T), axis=1)[:, :4]
    assert np.mean([len(set(a) & set(b)) / 4 for a, b in zip(found.rows.tolist(), exact.tolist(), strict=True)]) > 0.9
    assert store.nearest(A.id, _unit(records.vectors[:0]), 4).rows.shape == (0, 0)


def test_an_index_left_invalid_by_a_cancelled_build_is_dropped_and_built_again(store_of, postgres_url):
    plain = store_of(ann_threshold=None)  # stores the rows, builds nothing
    header, records = _batch(n=500)
    plain.put(header, [records], complete=lambda: True)
    name = f"{plain.indexes.base(A.id)}_500"
    # A writer's open transaction makes CREATE INDEX CONCURRENTLY wait after it has put the (invalid) index in the
    # catalog; cancelling it then leaves that index behind, as a replica killed mid-build would.
    writer = psycopg.connect(postgres_url)
    writer.execute("LOCK TABLE chroma_records IN ROW EXCLUSIVE MODE")
    builder = psycopg.connect(postgres_url, autocommit=True)
    pid = builder.info.backend_pid
    failed: list[BaseException] = []

    def build() -> None:
        try:
            builder.execute(
                f'CREATE INDEX CONCURRENTLY "{name}" ON chroma_records USING hnsw ((embedding::vector(8)) '
                f"vector_cosine_ops) WHERE tenant = '{plain.tenant}' AND set_id = '{A.id}' AND mode = 'training' "
                "AND row < 500"
            )
        except psycopg.Error as exc:
            failed.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    try:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            for _ in range(200):
                waiting = admin.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                if waiting and waiting[0] == "Lock":
                    break
                time.sleep(0.05)
            assert admin.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0]
        thread.join(30)
    finally:
        writer.rollback()
        writer.close()
        builder.close()
    assert failed and isinstance(failed[0], psycopg.errors.QueryCanceled)
    assert _indexes(plain) == [(name, 500, False)]
    assert plain.nearest(A.id, _unit(records.vectors[:1]), 3) is None  # an invalid index is never used

    store = store_of(ann_threshold=100)  # a replica that builds: it finds the leftover, drops it, builds anew
    assert store.nearest(A.id, _unit(records.vectors[:1]), 3) is None  # the build starts; exact search meanwhile
    assert store.wait_for_index(A.id, 120)
    assert _indexes(store) == [(name, 500, True)]
    assert store.nearest(A.id, _unit(records.vectors[:2]), 3).rows[:, 0].tolist() == [0, 1]


def test_after_a_small_delete_the_index_is_kept_and_finds_the_rows_by_their_new_numbers(store_of):
    store = store_of(ann_threshold=200)
    header, records = _batch(n=400)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    name = f"{store.indexes.base(A.id)}_400"
    assert store.delete_records([records.input_uris[5], records.input_uris[7]]).training == 2
    assert _indexes(store) == [(name, 400, True)]  # no row re-filed: the deleted slots are holes
    found = store.nearest(A.id, _unit(records.vectors[[10, 399, 0, 6]]), 3)
    assert found.covered == 398 and found.rows[:, 0].tolist() == [8, 397, 0, 5]
    np.testing.assert_array_equal(found.vectors[:, 0], records.vectors[[10, 399, 0, 6]])
    assert store.get_set(A.id).training == 398
    np.testing.assert_array_equal(store.vectors(A.id, "training", 5, 9), records.vectors[[6, 8, 9, 10]])
    assert [r.id for r in store.records_at(A.id, "training", [397, 5, 0])] == [records.ids[i] for i in (399, 6, 0)]
    header, more = _batch(n=3, seed=1, batch_id="more")  # new rows take the slots after every one used
    store.put(header, [more], complete=lambda: True)
    assert [r.row for r in store.records(A.id, "training", 396)] == [396, 397, 398, 399, 400]
    assert [r.id for r in store.records(A.id, "training", 397, 399)] == [records.ids[399], more.ids[0]]


def test_after_a_delete_the_index_finds_the_renumbered_rows(store_of):
    store = store_of(ann_threshold=200, holes_at_most=0)  # every delete renumbers
    header, records = _batch(n=400)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    assert store.delete_records([records.input_uris[5]]).training == 1
    found = store.nearest(A.id, _unit(records.vectors[[10, 399, 0]]), 3)
    # Rows after the deleted one moved down by one; the index (row < 400) holds each once, by its new number.
    assert found.covered == 399 and found.rows[:, 0].tolist() == [9, 398, 0]
    assert len(set(found.rows[0].tolist())) == 3


def test_a_build_held_by_another_replica_is_not_retried_at_every_query(store_of, postgres_url, caplog):
    import logging

    from chroma_core.engine.postgres_index import _lock_key

    store = store_of(ann_threshold=100)
    header, records = _batch(n=300)
    with psycopg.connect(postgres_url, autocommit=True) as other:  # "another replica" holds the set's build
        other.execute("SELECT pg_advisory_lock(%s)", (_lock_key(store.indexes.base(A.id)),))
        with caplog.at_level(logging.INFO, logger="chroma"):
            store.put(header, [records], complete=lambda: True)  # starts a build, which finds the lock taken
            assert store.wait_for_index(A.id, 60) is False
            for _ in range(5):
                assert store.nearest(A.id, _unit(records.vectors[:1]), 3) is None  # exact search meanwhile
            store.wait_for_index(A.id, 60)
        assert caplog.text.count("is being built by another replica") == 1
    assert _indexes(store) == []


def test_a_delete_that_would_refile_most_indexed_rows_rebuilds_the_index_instead(store_of):
    store = store_of(ann_threshold=200, holes_at_most=0)
    header, records = _batch(n=400)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    store.indexes.refile_at_most = 10  # 400 rows after row 0 to re-file: more than 10 and than 400 / 5
    assert store.delete_records([records.input_uris[0]]).training == 1
    assert store.wait_for_index(A.id, 120)  # dropped before the delete, built again after it
    assert _indexes(store) == [(f"{store.indexes.base(A.id)}_399", 399, True)]
    found = store.nearest(A.id, _unit(records.vectors[[10, 399]]), 3)
    assert found.covered == 399 and found.rows[:, 0].tolist() == [9, 398]


def test_deleting_a_set_drops_its_index_and_the_set_made_anew_gets_its_own(store_of):
    store = store_of(ann_threshold=100)
    header, records = _batch(n=200)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120) and len(_indexes(store)) == 1
    assert store.delete_set(A.id)
    assert _indexes(store) == []
    header, records = _batch(n=150, dim=12, batch_id="anew")  # another dimension: the old index's cast would fail
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(A.id, 120)
    assert store.nearest(A.id, _unit(records.vectors[:2]), 3).rows[:, 0].tolist() == [0, 1]
