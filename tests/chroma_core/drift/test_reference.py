"""The held-out reference's scores against a brute force, for the centred kinds."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_core.drift.reference import FOLDS, reference_of
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore
from chroma_core.engine.index import normalize
from chroma_core.records import new_batch


def _brute_force(x: np.ndarray, labels: list[str] | None, rows: np.ndarray, k: int) -> np.ndarray:
    unit = normalize(x).astype(np.float64)
    mean = unit.mean(axis=0)
    centred = unit - mean
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    fold = np.arange(len(rows)) % FOLDS
    codes = np.array(labels) if labels is not None else np.zeros(len(x), dtype=str)
    out = []
    for i, row in enumerate(rows):
        others = np.setdiff1d(np.arange(len(x)), rows[fold == fold[i]])
        sims = centred[others] @ centred[row]
        best = np.inf
        for label in np.unique(codes[others]):
            mine = np.sort(sims[codes[others] == label])[::-1]
            if len(mine) >= k:
                best = min(best, 1.0 - mine[:k].mean())
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize(
    ("kind", "labelled"), [("knn_centred", True), ("knn_class_centred", True), ("knn_class_centred", False)]
)
def test_the_centred_reference_is_the_brute_force_without_the_rows_fold(tmp_path, kind, labelled):
    rng = np.random.default_rng(3)
    n, dim = 120, 8  # every training row is a candidate: the engine's re-ranking is then exact
    centers = 2.0 + rng.normal(size=(3, dim))
    pick = rng.integers(3, size=n)
    x = (centers[pick] + 0.4 * rng.normal(size=(n, dim))).astype(np.float32)
    labels = [f"c{c}" for c in pick] if labelled else None
    store = SQLiteStore(tmp_path, ann_threshold=None)
    es = EmbeddingSet.from_dict({"data": "reference"})
    store.create_set(es, dim)
    header, records = new_batch(es, "training", x, [f"t/{i}" for i in range(n)], labels=labels)
    store.put(header, [records], complete=lambda: True)
    reference = reference_of(store, es.id, n, 0, k=5, novelty_score=kind)
    assert reference is not None and len(reference) == n // 4
    expect = _brute_force(x, labels if kind == "knn_class_centred" else None, reference.rows, 5)
    assert np.isfinite(expect).all() and expect.std() > 0.01
    np.testing.assert_allclose(reference.novelty, expect, atol=1e-6)
    store.close()
