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
@given(
    training(),
    st.sampled_from(["knn_class_centred", "knn_centred", "knn_mean", "knn_kth"]),
    st.integers(2, 30),
    st.integers(1, 20),
)
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


def _model(x, labels, inferences=None):
    model = SetModel("s", x.shape[1])
    model.add(x, [f"/t/{i}" for i in range(len(x))], labels, inferences or [None] * len(x))
    return model


def _novelty(model, queries, th=None):
    request = QueryRequest.of("s", queries, [f"q{i}" for i in range(len(queries))], None, th or Thresholds())
    return np.array([r.scores["novelty"] for r in model.query(request)])


def test_the_default_without_labels_is_the_centred_score():
    """The documented fallback: no label nor predicted label in training, and the default is ``knn_centred``, with
    its candidates too (500 rows: more than either score's; the per-label score would re-rank 200 where the plain
    one re-ranks 50, and cost a wider search for nothing)."""
    rng = np.random.default_rng(1)
    big = (2.0 + rng.normal(size=(500, 8))).astype(np.float32)
    q = (2.0 + rng.normal(size=(5, 8))).astype(np.float32)
    unlabelled = _model(big, [None] * 500)
    assert Thresholds().novelty_score == "knn_class_centred"
    centred = Thresholds(novelty_score="knn_centred")
    np.testing.assert_array_equal(_novelty(unlabelled, q), _novelty(unlabelled, q, centred))
    assert unlabelled._wanted(10, "knn_class_centred", 499) == unlabelled._wanted(10, "knn_centred", 499) == 50
    assert _model(big, ["a", None] * 250)._wanted(10, "knn_class_centred", 499) == 200
    x = big[:40]
    model = _model(x, [None] * 40)
    np.testing.assert_array_equal(_novelty(model, q), _novelty(model, q, centred))
    one_class = _model(x, ["a"] * 40)  # one class: its k nearest are the k nearest
    np.testing.assert_allclose(_novelty(one_class, q), _novelty(model, q, Thresholds(novelty_score="knn_centred")))
    # Predicted labels count as labels: two predicted classes make the score per class.
    predicted = _model(x, [None] * 40, [{"label": "a" if v[0] > 2 else "b", "score": 0.9} for v in x])
    assert np.all(_novelty(predicted, q) >= _novelty(model, q, Thresholds(novelty_score="knn_centred")) - 1e-12)


def test_the_default_on_degenerate_sets_is_finite():
    same = np.tile(np.array([[1.0, 2.0, 3.0]], dtype=np.float32), (30, 1))
    for labels in ([None] * 30, ["a"] * 30, ["a", None] * 15):  # all identical vectors, with or without labels
        results = _model(same, labels).query(QueryRequest.of("s", same[:2], ["q0", "q1"], None, Thresholds()))
        assert all(r.not_useful and 0.0 <= r.scores["novelty"] < 1e-6 for r in results)
    two = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # two points, min_training lowered to 2
    th = Thresholds(min_training=2)
    results = _model(two, ["a", "b"]).query(QueryRequest.of("s", np.array([[1.0, 1.0]], np.float32), ["q"], None, th))
    assert all(math.isfinite(v) for v in results[0].scores.values() if v is not None)
    assert all(math.isfinite(v) for v in results[0].thresholds.values() if v is not None)


def test_impossible_thresholds_are_refused_and_extreme_ones_answer():
    import pytest

    from chroma_core.errors import ConfigError

    for bad in ({"novelty": 2.5}, {"novelty": -0.1}, {"percentile": 100}, {"k": 0}, {"novelty_score": "lof"}):
        with pytest.raises(ConfigError, match="thresholds\\."):
            Thresholds.coerce(bad)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    model = _model(x, ["a", "b"] * 25)
    q = rng.normal(size=(4, 6)).astype(np.float32)
    every = model.query(QueryRequest.of("s", q, list("abcd"), None, Thresholds(novelty=0.0, near_duplicate=0.0)))
    none = model.query(QueryRequest.of("s", q, list("abcd"), None, Thresholds(novelty=2.0)))
    assert all("out_of_distribution" in r.recommendations for r in every)
    assert not any("out_of_distribution" in r.recommendations for r in none)
    assert all(math.isfinite(r.scores["novelty"]) for r in every + none)
