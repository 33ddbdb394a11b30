from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from chroma_core.engine.index import normalize
from chroma_core.engine.selection import pool, priority, spread
from chroma_core.engine.strategies import density

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


# ---- typicality and class balance ------------------------------------------------------------------------------------


def _dense_cluster_and_outlier(rng):
    """Twenty novel inputs close together (priority 1.5) and one lone outlier of higher priority (2.0)."""
    a, b = np.eye(8, dtype=np.float32)[:2]
    cluster = a + 0.05 * rng.normal(size=(20, 8))
    vectors = np.concatenate([[b], cluster]).astype(np.float32)
    rel = np.concatenate([[2.0], np.full(20, 1.5)])
    return vectors, rel


def test_typicality_picks_the_dense_novel_cluster_before_a_lone_outlier():
    vectors, rel = _dense_cluster_and_outlier(np.random.default_rng(0))
    plain, _, _ = spread(vectors, rel, 1, diversity=0.0, duplicate_distance=0.001)
    assert plain == [0]  # priority alone takes the outlier
    typical, _, _ = spread(vectors, rel, 1, diversity=0.0, duplicate_distance=0.001, typicality=1.0)
    assert typical[0] != 0
    # With room for two, the outlier still comes, after the cluster: typicality reorders, it never hides.
    both, _, _ = spread(vectors, rel, 2, diversity=0.5, duplicate_distance=0.001, typicality=1.0)
    assert both[0] != 0 and both[1] == 0


def test_density_is_high_inside_a_cluster_and_low_for_an_outlier():
    vectors, _ = _dense_cluster_and_outlier(np.random.default_rng(1))
    d = density(normalize(vectors))
    assert d.max() == 1.0 and d[0] < 0.3 and d[1:].min() > 0.9
    assert density(normalize(vectors[:1])).tolist() == [1.0]  # one candidate: nothing to compare with
    # Measured against a sample when the pool is large: the same ordering, at a bounded cost.
    many = normalize(np.concatenate([vectors, vectors[1:] + 0.01]).astype(np.float32))
    sampled = density(many, sample=12)
    assert sampled[0] < sampled[1:].min()


def test_full_balance_covers_every_class_before_repeating():
    rng = np.random.default_rng(2)
    m = 60
    vectors = rng.normal(size=(m, 16)).astype(np.float32)
    classes = np.array([0] * 40 + [1] * 15 + [2] * 4 + [3] * 1)  # one class dominates the candidates
    rel = np.where(classes == 0, 3.0, 1.0) + 0.1 * rng.random(m)  # ... and the priorities
    unbalanced, _, _ = spread(vectors, rel, 8, diversity=0.0, duplicate_distance=0.001)
    assert set(classes[unbalanced]) == {0}
    picks, _, _ = spread(vectors, rel, 12, diversity=0.0, duplicate_distance=0.001, classes=classes, balance=1.0)
    picked = classes[picks].tolist()
    assert sorted(picked[:4]) == [0, 1, 2, 3]  # every class once before any repeats
    # Round-robin over the classes that still have candidates: class 3 (one input) runs out, the rest take turns.
    assert picked.count(3) == 1
    assert sorted(picked.count(c) for c in (0, 1, 2)) == [3, 4, 4]
    # Within a class, priority order is kept.
    zeros = [p for p in picks if classes[p] == 0]
    assert zeros == sorted(zeros, key=lambda p: -rel[p])


def test_partial_balance_trades_priority_for_classes():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)
    classes = np.array([0] * 20 + [1] * 10)
    rel = np.where(classes == 0, 1.0, 0.6)
    counts = []
    for weight in (0.0, 0.1, 0.5, 1.0):
        picks, _, _ = spread(vectors, rel, 10, diversity=0.0, duplicate_distance=0.001, classes=classes, balance=weight)
        counts.append(int((classes[picks] == 1).sum()))
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] == 5


def test_one_class_or_no_weight_is_plain_mmr():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(25, 8)).astype(np.float32)
    rel = rng.random(25)
    plain = spread(vectors, rel, 10, diversity=0.5, duplicate_distance=0.01)
    same_class = spread(vectors, rel, 10, diversity=0.5, duplicate_distance=0.01, classes=np.zeros(25, int), balance=1)
    no_weight = spread(vectors, rel, 10, diversity=0.5, duplicate_distance=0.01, classes=np.arange(25), balance=0.0)
    assert plain == same_class == no_weight


@settings(max_examples=100, deadline=None)
@given(candidates(), st.integers(1, 50), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.integers(1, 5))
def test_weighted_picks_are_distinct_and_never_near_duplicates(case, n, diversity, typicality, balance, k):
    vectors, rel = case
    classes = np.arange(len(vectors)) % k
    picks, similarity, dropped = spread(
        vectors, rel, n, diversity=diversity, duplicate_distance=0.01, typicality=typicality, classes=classes,
        balance=balance,
    )  # fmt: skip
    assert len(picks) == len(set(picks)) <= n and len(similarity) == len(picks)
    assert len(picks) + dropped <= len(vectors)
    if len(picks) < n:
        assert len(picks) + dropped == len(vectors)
