"""Balance without any class: clusters of the candidates stand in for the classes."""

from __future__ import annotations

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.engine.index import normalize
from chroma_core.engine.strategies import cluster_codes
from chroma_core.records import new_batch
from chroma_core.types import QueryRequest, SelectRequest


def test_cluster_codes_follow_separated_blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 4
    x = normalize(np.repeat(centers, 30, axis=0) + 0.1 * rng.normal(size=(90, 16))).astype(np.float32)
    codes = cluster_codes(x, picks=3)  # sqrt(90) clusters capped at the 3 picks
    assert len(np.unique(codes)) == 3
    assert all(len(np.unique(codes[b * 30 : (b + 1) * 30])) == 1 for b in range(3))
    assert np.array_equal(codes, cluster_codes(x, picks=3))  # the same candidates, the same clusters


def _unlabelled_world(tmp_path):
    rng = np.random.default_rng(1)
    dim = 16
    known, novel = rng.normal(size=(2, dim)), rng.normal(size=(3, dim))
    train = np.concatenate([c + 0.3 * rng.normal(size=(100, dim)) for c in known]).astype(np.float32)
    # One big new region and two small ones half-way to training: by priority alone the big one takes every pick.
    sizes = (60, 20, 20)
    middle = [novel[0], known[0] + novel[1], known[1] + novel[2]]
    prod = np.concatenate([c + 0.3 * rng.normal(size=(m, dim)) for c, m in zip(middle, sizes, strict=True)])
    prod = prod.astype(np.float32)
    region = np.repeat(np.arange(3), sizes)
    engine = Engine(SQLiteStore(tmp_path, ann_threshold=None))
    es = EmbeddingSet.from_dict({"data": "clusters"})
    engine.put(*new_batch(es, "training", train, [f"t/{i}" for i in range(len(train))]))
    uris = [f"p/{i}" for i in range(len(prod))]
    results = engine.query(QueryRequest(es.id, prod, tuple(uris)))
    engine.put(*new_batch(es, "production", prod, uris, results=results))
    return engine, es, region


def test_balance_without_classes_covers_the_clusters_of_the_candidates(tmp_path):
    engine, es, region = _unlabelled_world(tmp_path)
    n = 6

    def regions(balance: float) -> set[int]:
        selection = engine.select(SelectRequest(es.id, n, 0.0, typicality=0.0, balance=balance))
        return {int(region[int(u.split("/")[1])]) for u in selection.input_uris}

    assert regions(0.0) == {0}  # priority order: the far region only
    assert regions(1.0) == {0, 1, 2}  # round-robin over the candidates' clusters reaches the small regions
    engine.close()
