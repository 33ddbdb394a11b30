"""Degenerate training sets and odd thresholds: an answer or a clear error, never a crash or a NaN."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from chroma_core.engine.scoring import SetModel
from chroma_core.types import QueryRequest, Thresholds

finite = st.floats(-5, 5, allow_nan=False, width=32)


@st.composite
def training(draw):
    d = draw(st.integers(2, 6))
    base = draw(arrays(np.float32, (draw(st.integers(1, 4)), d), elements=finite))
    base[np.linalg.norm(base, axis=1) == 0] = 1.0  # an all-zero embedding is refused before it gets here
    n = draw(st.integers(2, 40))
    rows = draw(st.lists(st.integers(0, len(base) - 1), min_size=n, max_size=n))  # few distinct: copies galore
    labels = draw(st.lists(st.sampled_from([None, "a", "b"]), min_size=n, max_size=n))  # some, one, or no labels
    return base[rows], labels


@settings(max_examples=150, deadline=None)
@given(training(), st.sampled_from(["knn_class_centred", "knn_centred", "knn_mean", "knn_kth"]), st.integers(2, 30), st.integers(1, 20))
def test_any_training_set_gives_finite_consistent_answers(case, kind, min_training, k):
    x, labels = case
    model = SetModel("s", x.shape[1])
    model.add(x, [f"/t/{i}" for i in range(len(x))], labels, [None] * len(x))
    th = Thresholds(novelty_score=kind, min_training=min_training, k=k)
    queries = np.concatenate([x[:2], -x[:1], x[:1] + 0.5]).astype(np.float32)
    queries[np.linalg.norm(queries, axis=1) == 0] = 1.0
    infs = [{"label": "a", "score": 0.6}, None, {"label": "b", "score": 0.9}, None]
    results = model.query(QueryRequest.of("s", queries, [f"q{i}" for i in range(4)], infs, th))
    for r in results:
        assert all(v is None or math.isfinite(v) for v in r.scores.values()), r.scores
        assert all(v is None or math.isfinite(v) for v in r.thresholds.values()), r.thresholds
        assert not {"near_duplicate", "out_of_distribution"} <= set(r.recommendations)
        if len(x) < min_training:
            assert r.recommendations == ("insufficient_training_data",)
    if len(x) >= min_training:
        assert "near_duplicate" in results[0].recommendations  # an exact copy of a training input
