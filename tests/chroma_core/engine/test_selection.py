from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from chroma_core.engine.index import normalize
from chroma_core.engine.selection import pool, priority, spread

finite = st.floats(-10, 10, allow_nan=False, width=32)


@st.composite
def candidates(draw):
    m = draw(st.integers(1, 40))
    d = draw(st.integers(2, 8))
    vectors = draw(arrays(np.float32, (m, d), elements=finite))
    # Repeat some rows exactly: copies of one failure are the case the spreading exists for.
    copies = draw(st.lists(st.tuples(st.integers(0, m - 1), st.integers(0, m - 1)), max_size=10))
    for src, dst in copies:
        vectors[dst] = vectors[src]
    rel = draw(arrays(np.float64, m, elements=st.floats(0, 5, allow_nan=False)))
    return vectors, rel


@settings(max_examples=200, deadline=None)
@given(candidates(), st.integers(1, 50), st.floats(0, 1), st.floats(0.001, 0.2))
def test_picks_are_distinct_bounded_and_never_near_duplicates(case, n, diversity, duplicate_distance):
    vectors, rel = case
    picks, similarity, dropped = spread(vectors, rel, n, diversity=diversity, duplicate_distance=duplicate_distance)
    assert len(picks) == len(set(picks)) <= n
    assert len(similarity) == len(picks) and (not picks or similarity[0] is None)
    unit = normalize(vectors)
    nonzero = [p for p in picks if np.linalg.norm(unit[p]) > 0]
    for i, a in enumerate(nonzero):
        for b in nonzero[i + 1 :]:
            assert float(unit[a] @ unit[b]) < 1.0 - duplicate_distance + 1e-6
    # Every candidate is picked, dropped as a copy of a pick, or left because n was reached.
    assert len(picks) + dropped <= len(vectors)
    if len(picks) < n:
        assert len(picks) + dropped == len(vectors)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 30), st.integers(1, 30), st.randoms(use_true_random=False))
def test_zero_diversity_is_priority_order(m, n, rnd):
    vectors = np.eye(m, dtype=np.float32)  # orthogonal: no two candidates are near duplicates
    rel = np.array([rnd.random() for _ in range(m)])
    picks, _, dropped = spread(vectors, rel, n, diversity=0.0, duplicate_distance=0.02)
    assert dropped == 0
    assert picks == list(np.argsort(-rel, kind="stable")[: min(n, m)])


def test_full_diversity_is_farthest_point():
    rng = np.random.default_rng(0)
    a, b, c = np.eye(3, dtype=np.float32)
    vectors = np.concatenate([a + 0.05 * rng.normal(size=(50, 3)), b + 0.05 * rng.normal(size=(5, 3)), [c]])
    rel = np.ones(len(vectors))
    rel[:50] = 2.0  # the big cluster has the highest priority
    picks, _, _ = spread(vectors.astype(np.float32), rel, 3, diversity=1.0, duplicate_distance=0.001)
    assert sorted({0 if p < 50 else 1 if p < 55 else 2 for p in picks}) == [0, 1, 2]


def test_priority_is_the_strongest_signal_over_its_threshold():
    result = {
        "scores": {"novelty": 0.6, "uncertainty": 0.9, "label_disagreement": None, "nearest_similarity": 0.1},
        "thresholds": {"novelty": 0.3, "uncertainty": 0.6, "label_disagreement": 0.5, "near_duplicate": 0.02},
    }
    assert priority(result) == 2.0
    assert priority({"scores": {}, "thresholds": {}}) == 0.0
    assert priority({"scores": {"novelty": 1.0}, "thresholds": {"novelty": 0.0}}) == 0.0


def test_pool_keeps_the_highest_priorities():
    p = np.arange(100_000, dtype=np.float64)
    kept = pool(p, 10)
    assert len(kept) == 20_000 and kept.min() == 80_000 and list(kept) == sorted(kept)
    assert len(pool(p[:50], 10)) == 50
