from __future__ import annotations

import logging

import numpy as np
import pytest

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import ann
from chroma_core.engine.engine import Engine
from chroma_core.engine.store import SQLiteStore
from chroma_core.errors import StorageError
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest
from tests.conftest import SET, clusters

pytest.importorskip("usearch")
ES = EmbeddingSet.from_dict(SET)


def fill(store: SQLiteStore, x: np.ndarray, start: int = 0, batch: str = "b") -> None:
    n = len(x)
    header = BatchHeader(batch, ES, "training", x.shape[1], "t")
    store.put(
        header,
        Records(
            x,
            [f"{batch}:{i}" for i in range(n)],
            [f"/{start + i}" for i in range(n)],
            [None] * n,
            [None] * n,
            [0.0] * n,
        ),
        complete=True,
    )


@pytest.fixture
def data():
    x, _, _ = clusters(n_per=400, dim=32, k=5, noise=0.4, seed=3)  # 2,000 rows
    q, _, _ = clusters(n_per=20, dim=32, k=5, noise=0.4, seed=3)
    return x, q + 0.05


def answers(engine: Engine, q: np.ndarray):
    results = engine.query(QueryRequest.of(ES, q, [f"q{i}" for i in range(len(q))]))
    return [
        (r.recommendations, [n.input_uri for n in r.nearest], r.scores["novelty"], r.scores["nearest_similarity"])
        for r in results
    ]


def test_approximate_index_answers_like_exact_search(tmp_path, data):
    x, q = data
    fill(SQLiteStore(tmp_path / "a"), x)
    fill(SQLiteStore(tmp_path / "e"), x)
    approx = Engine(SQLiteStore(tmp_path / "a"), ann_threshold=500)
    exact = Engine(SQLiteStore(tmp_path / "e"), ann_threshold=10**9)
    a, e = answers(approx, q), answers(exact, q)
    assert isinstance(approx._models[ES.id].index, ann.ANNIndex)
    same_neighbours = np.mean([len(set(x[1]) & set(y[1])) / len(y[1]) for x, y in zip(a, e, strict=True)])
    assert same_neighbours >= 0.95
    # candidates are re-ranked with the exact float32 vectors: the same neighbour gets the same similarity
    same_top = [(x[3], y[3]) for x, y in zip(a, e, strict=True) if x[1][0] == y[1][0]]
    assert len(same_top) >= 0.95 * len(a) and all(abs(p - q) < 1e-5 for p, q in same_top)
    # an approximate k-th neighbour is never closer than the true one, and rarely much farther
    gaps = np.array([x[2] - y[2] for x, y in zip(a, e, strict=True)])
    assert gaps.min() > -1e-5 and gaps.mean() < 0.01
    assert np.mean([x[0] == y[0] for x, y in zip(a, e, strict=True)]) >= 0.95


def test_index_persists_loads_and_grows_incrementally(tmp_path, data, caplog):
    x, q = data
    store = SQLiteStore(tmp_path)
    fill(store, x[:1500])
    first = Engine(store, ann_threshold=500)
    before = answers(first, q)
    path = store.vector_path(ES.id, "training").with_suffix(".usearch")
    assert path.exists() and path.with_suffix(".json").exists()
    fill(store, x[1500:], start=1500, batch="c")  # more training data arrives
    with caplog.at_level(logging.WARNING, logger="chroma"):
        second = Engine(SQLiteStore(tmp_path), ann_threshold=500)  # a new process: loads the file, adds the rest
        after = answers(second, q)
        assert len(second._models[ES.id]) == 2000
        first.query(QueryRequest.of(ES, q[:1], ["x"]))  # the first engine notices the new rows too
        assert len(first._models[ES.id]) == 2000
    assert "rebuilding" not in caplog.text
    assert len(before) == len(after)


def test_corrupt_index_is_detected_and_rebuilt_never_a_wrong_answer(tmp_path, data, caplog):
    x, q = data
    store = SQLiteStore(tmp_path)
    fill(store, x)
    good = answers(Engine(store, ann_threshold=500), q)
    path = store.vector_path(ES.id, "training").with_suffix(".usearch")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="chroma"):
        again = answers(Engine(SQLiteStore(tmp_path), ann_threshold=500), q)
    assert "checksum mismatch" in caplog.text and "rebuilding" in caplog.text
    assert [a[0] for a in again] == [g[0] for g in good]
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="chroma"):
        assert [a[0] for a in answers(Engine(SQLiteStore(tmp_path), ann_threshold=500), q)] == [g[0] for g in good]


def test_reduced_precision_and_memory_refusal():
    assert {"f32", "f16", "i8"} >= {ann.ANNIndex(8, d).dtype for d in ("f32", "f16", "i8")}
    with pytest.raises(ValueError, match="index dtype"):
        ann.ANNIndex(8, "f64")
    with pytest.raises(StorageError, match=r"needs about [\d.]+ GiB, but only [\d.]+ GiB .* available"):
        ann.check_memory(10**12, 384, "f16", what="set x")
