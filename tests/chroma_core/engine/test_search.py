from __future__ import annotations

import numpy as np
import pytest

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore
from chroma_core.engine.engine import Engine
from chroma_core.engine.search import Neighbours, _repeats
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest, Thresholds
from tests.conftest import SET, clusters

ES = EmbeddingSet.from_dict(SET)


def test_repeats_marks_every_later_copy_and_says_none_when_there_is_none():
    rows = np.array([[3, 1, 3, 3, 0], [4, 2, 0, 1, 5]])
    assert _repeats(rows[1:]) is None
    np.testing.assert_array_equal(_repeats(rows), [[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]])


@pytest.mark.parametrize("queries", [3, 40])
def test_candidate_similarities_of_a_batch_are_each_querys_own(queries):
    # Few candidates of a large set take np.unique's path, many the bitmap's: the same numbers either way.
    rng = np.random.default_rng(queries)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    search = Neighbours(16, rows=lambda r: x[r], vectors=lambda a, b: x[a:b], start=len(x))
    q = x[rng.integers(500, size=queries)] + 0.1 * rng.normal(size=(queries, 16)).astype(np.float32)
    cand = rng.integers(500, size=(queries, 7 if queries == 3 else 60))
    together = search._candidate_similarities(q, cand)
    for i in range(queries):
        np.testing.assert_array_equal(together[i], search._candidate_similarities(q[i : i + 1], cand[i : i + 1])[0])


@pytest.mark.parametrize("th", [Thresholds(), Thresholds.coerce({"novelty_score": "knn_centred"})])
def test_a_labelled_batch_on_the_index_under_the_default_score_gets_each_querys_own_answer(tmp_path, monkeypatch, th):
    pytest.importorskip("usearch")
    monkeypatch.setenv("CHROMA_INDEX_THREADS", "1")
    x, labels, _ = clusters(n_per=400, dim=32, k=5, noise=0.4, seed=3)  # 2,000 rows, 5 labels
    store = SQLiteStore(tmp_path, ann_threshold=500)
    n = len(x)
    some = [f"c{lab}" if i % 9 else None for i, lab in enumerate(labels)]  # some rows unlabelled
    header = BatchHeader("b", ES, "training", x.shape[1], "t")
    records = Records(x, [f"b:{i}" for i in range(n)], [f"/{i}" for i in range(n)], [None] * n, some, [0.0] * n)
    store.put(header, [records], complete=lambda: True)
    assert store.wait_for_index(ES.id, 120)
    engine = Engine(store)
    q, _, _ = clusters(n_per=12, dim=32, k=5, noise=0.4, seed=4)
    q = np.concatenate([q, x[:5], q[:9]]).astype(np.float32)  # copies of training rows, and queries repeated
    batch = engine.query(QueryRequest.of(ES, q, [f"q{i}" for i in range(len(q))], None, th))
    assert engine._models[ES.id].search.start == n  # every row reached through the store's index
    alone = [engine.query(QueryRequest.of(ES, q[i : i + 1], [f"q{i}"], None, th))[0] for i in range(len(q))]
    assert [r.to_dict() for r in batch] == [r.to_dict() for r in alone]
    assert {t for r in batch for t in r.recommendations} >= {"near_duplicate"}
