from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore
from chroma_core.errors import DimensionMismatchError, StorageError
from chroma_core.records import BatchHeader, Records, new_batch_id
from tests.conftest import SET

ES = EmbeddingSet.from_dict(SET)


def batch(n: int, dim: int = 4, batch_id: str | None = None, start: int = 0, mode: str = "training"):
    bid = batch_id or new_batch_id()
    vectors = np.arange(start * dim, (start + n) * dim, dtype=np.float32).reshape(n, dim)
    ids = [f"{bid}:{start + i}" for i in range(n)]
    header = BatchHeader(bid, ES, mode, dim, "t")
    return header, Records(
        vectors, ids, [f"/{start + i}" for i in range(n)], [{"i": start + i} for i in range(n)], [None] * n, [0.0] * n
    )


def put(store, header, records, complete: bool = True):
    """One in-memory batch (the store takes a stream of chunks)."""
    return store.put(header, [records], complete=lambda: complete)


def test_put_is_idempotent(tmp_path):
    store = SQLiteStore(tmp_path)
    header, records = batch(10)
    assert store.put(header, [records], complete=lambda: True).stored == 10
    again = store.put(header, [records], complete=lambda: True)
    assert (again.stored, again.duplicates, again.batch_already_complete) == (0, 10, True)
    assert store.get_set(ES.id).training == 10
    np.testing.assert_array_equal(store.vectors(ES.id, "training"), records.vectors)


def test_partial_batch_can_be_completed_without_duplicates(tmp_path):
    store = SQLiteStore(tmp_path)
    header, first = batch(5, batch_id="b")
    store.put(header, [first], complete=lambda: False)
    _, whole = batch(10, batch_id="b")
    result = store.put(header, [whole], complete=lambda: True)
    assert (result.stored, result.duplicates) == (5, 5)
    assert [r.input_uri for r in store.records(ES.id, "training", 0, 10)] == [f"/{i}" for i in range(10)]


def test_duplicate_ids_inside_one_batch(tmp_path):
    store = SQLiteStore(tmp_path)
    header, records = batch(3)
    records.ids = ["x", "x", "y"]
    assert store.put(header, [records], complete=lambda: True).stored == 2


def test_dimension_mismatch_and_modes(tmp_path):
    store = SQLiteStore(tmp_path)
    put(store, *batch(3))
    with pytest.raises(DimensionMismatchError):
        put(store, *batch(3, dim=5))
    put(store, *batch(2, mode="production"))
    info = store.get_set(ES.id)
    assert (info.training, info.production, info.dimension) == (3, 2, 4)
    assert info.embedding_set == SET


def test_orphan_vectors_from_a_crash_are_cut(tmp_path):
    store = SQLiteStore(tmp_path)
    put(store, *batch(3))
    # A crash after the vectors were appended but before the transaction committed leaves an unreferenced tail.
    with open(tmp_path / "sets" / ES.id / "training.f32", "ab") as f:
        f.write(b"\xff" * 4 * 4 * 2)
    put(store, *batch(2, start=3))
    vectors = store.vectors(ES.id, "training")
    np.testing.assert_array_equal(vectors, np.arange(20, dtype=np.float32).reshape(5, 4))


def test_missing_vectors_file_is_reported(tmp_path):
    store = SQLiteStore(tmp_path)
    put(store, *batch(3))
    (tmp_path / "sets" / ES.id / "training.f32").write_bytes(b"")
    with pytest.raises(StorageError, match="modified outside Chroma"):
        store.vectors(ES.id, "training")


def test_unwritable_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="persist_directory"):
        SQLiteStore(tmp_path / "file" / "sub")


@pytest.mark.slow
def test_concurrent_processes_lose_nothing(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, numpy as np
        from tests.chroma_core.engine.test_store import batch, put
        from chroma_core.engine import SQLiteStore
        store = SQLiteStore({str(tmp_path)!r})
        w = int(sys.argv[1])
        for j in range(20):
            put(store, *batch(50, start=(w * 20 + j) * 50))
        """
    )
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)], cwd=root) for w in range(4)]
    assert [p.wait() for p in procs] == [0, 0, 0, 0]
    store = SQLiteStore(tmp_path)
    vectors = store.vectors(ES.id, "training")
    assert len(vectors) == 4000
    # Every row's vector matches its record: rows and vectors were never interleaved wrongly.
    recs = store.records(ES.id, "training", 0, 4000)
    for rec in recs[::97]:
        i = int(rec.input_uri[1:])
        np.testing.assert_array_equal(vectors[rec.row], np.arange(i * 4, i * 4 + 4, dtype=np.float32))
    assert sorted(int(r.input_uri[1:]) for r in recs) == list(range(4000))


# ---- deletes: crash safety of the compaction, and the engine over them ------------------------------------------


def test_a_crash_inside_a_delete_leaves_the_old_state(tmp_path, monkeypatch):
    from chroma_core.engine import sqlite_files

    store = SQLiteStore(tmp_path)
    put(store, *batch(5))
    real = sqlite_files.compact

    def crash(*args, **kwargs):
        real(*args, **kwargs)  # the new generation's file is written and fsynced ...
        raise OSError("power cut")  # ... and the process dies before the transaction commits

    monkeypatch.setattr(sqlite_files, "compact", crash)
    with pytest.raises(OSError):
        store.delete_records(["/1"])
    assert (tmp_path / "sets" / ES.id / "training.1.f32").exists()  # what the crash left behind
    monkeypatch.undo()
    again = SQLiteStore(tmp_path)  # the next open sweeps it; the data is as before the delete
    assert not (tmp_path / "sets" / ES.id / "training.1.f32").exists()
    info = again.get_set(ES.id)
    assert (info.training, info.revision) == (5, 0)
    np.testing.assert_array_equal(again.vectors(ES.id, "training"), np.arange(20, dtype=np.float32).reshape(5, 4))


def test_a_delete_switches_files_and_sweeps_the_old_generation(tmp_path):
    store = SQLiteStore(tmp_path)
    put(store, *batch(5))
    folder = tmp_path / "sets" / ES.id
    assert store.delete_records(["/0", "/3"]).training == 2
    assert sorted(p.name for p in folder.iterdir()) == ["training.1.f32"]
    # A crash after the commit but before the sweep would leave the old file: the next open removes it.
    (folder / "training.f32").write_bytes(b"\0" * 80)
    SQLiteStore(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["training.1.f32"]
    assert [r.input_uri for r in store.records(ES.id, "training")] == ["/1", "/2", "/4"]


def test_engine_deletes_and_answers_without_the_deleted_inputs(tmp_path):
    from chroma_core.engine import Engine
    from chroma_core.types import QueryRequest

    engine = Engine(SQLiteStore(tmp_path))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    header = BatchHeader("t", ES, "training", 8, "t")
    uris = [f"/t/{i}" for i in range(60)]
    engine.put(header, Records(x, [f"t:{i}" for i in range(60)], uris, [None] * 60, [None] * 60, [0.0] * 60))
    (before,) = engine.query(QueryRequest(ES.id, x[:1], ("/q",)))
    assert before.nearest[0].input_uri == "/t/0" and before.not_useful
    report = engine.delete_records(["/t/0"])
    assert (report.training, report.sets) == (1, (ES.id,))
    (after,) = engine.query(QueryRequest(ES.id, x[:1], ("/q",)))
    assert "/t/0" not in [n.input_uri for n in after.nearest] and not after.not_useful
    assert engine.get_set(ES.id).training == 59
    with pytest.raises(TypeError):
        engine.delete_records("/t/1")  # one string is not a list of uris
    assert engine.delete_set(ES.id) and engine.get_set(ES.id) is None and not engine.delete_set(ES.id)


def test_calibrations_are_kept_in_the_store_for_the_set_revision(tmp_path):
    from chroma_core.engine import Engine
    from chroma_core.types import QueryRequest

    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 8)).astype(np.float32)
    store = SQLiteStore(tmp_path)
    header = BatchHeader("t", ES, "training", 8, "t")
    uris = [f"/t/{i}" for i in range(80)]
    put(store, header, Records(x, [f"t:{i}" for i in range(80)], uris, [None] * 80, [None] * 80, [0.0] * 80))
    query = QueryRequest(ES.id, rng.normal(size=(1, 8)).astype(np.float32), ("/q",))  # no near duplicate
    (first,) = Engine(store).query(query)
    key = "calibration/v2/knn_class_centred/95/1/10/20"  # the default score
    kept = store.read_state(ES.id, key)
    assert kept is not None and kept["n_training"] == 80 and kept["revision"] == 0
    assert kept["novelty"] == first.thresholds["novelty"]
    # Another engine (process, replica) answers with the kept calibration rather than computing its own.
    store.write_state(ES.id, key, {**kept, "novelty": 1e-6})
    (again,) = Engine(SQLiteStore(tmp_path)).query(query)
    assert again.thresholds["novelty"] == 1e-6 and "out_of_distribution" in again.recommendations
    # A delete bumps the revision: the kept calibration no longer applies and is computed anew.
    store.delete_records(["/t/79"])
    (after,) = Engine(SQLiteStore(tmp_path)).query(query)
    assert after.thresholds["novelty"] != 1e-6
    assert store.read_state(ES.id, key)["revision"] == 1


def test_a_large_batch_leaves_no_copy_of_itself_in_the_wal(tmp_path):
    import chroma

    x = np.random.default_rng(3).normal(size=(12_000, 16)).astype(np.float32)
    with chroma.TrainingSession(embedding_set={"m": "wal"}, persist_directory=str(tmp_path)) as s:
        s.log(input_uri=[f"/w/{i}" for i in range(len(x))], embedding=x)
    wal = tmp_path / "chroma.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size < 100_000  # checkpointed and truncated (it held ~4 MB)
    assert (tmp_path / "chroma.sqlite3").stat().st_size > 1_000_000  # the records are in the database itself
