from __future__ import annotations

import numpy as np

from chroma_core.engine.centred import MEAN_SAMPLE, candidates_for, centred_novelty, training_mean
from chroma_core.engine.index import normalize


def _brute(queries, train, k):
    """Centred kNN mean distance by brute force over every training row (the reference)."""
    mu = train.astype(np.float64).mean(0)
    cq = queries - mu
    ct = train - mu
    cq /= np.linalg.norm(cq, axis=1, keepdims=True)
    ct /= np.linalg.norm(ct, axis=1, keepdims=True)
    sims = cq @ ct.T
    return 1 - (-np.sort(-sims, axis=1)[:, :k]).mean(1)


def test_rescoring_raw_candidates_by_centred_cosine_bounds_and_with_all_rows_equals_the_full_search():
    rng = np.random.default_rng(0)
    # Anisotropic, as sentence embeddings are: a strong common direction plus clusters.
    common = rng.normal(size=32)
    centres = rng.normal(size=(5, 32))
    train = normalize(4 * common + centres[rng.integers(5, size=400)] + 0.5 * rng.normal(size=(400, 32)))
    queries = normalize(4 * common + rng.normal(size=(30, 32)))
    k = 10
    m = candidates_for(k, len(train))
    assert m == 50
    rows = np.argsort(-(queries @ train.T), axis=1)[:, :m]
    mean = training_mean(lambda r: train[r], len(train))
    got = centred_novelty(queries, rows, lambda r: train[r], mean, k)
    # Re-ranking a subset can only miss close rows, never invent them: at least the full search's distance. (On the
    # real corpora of the benchmark, the AUROC and TPR came out the same to three decimals as a full search.)
    assert (got >= _brute(queries, train, k) - 1e-9).all()
    # With every training row as a candidate it is the brute force exactly, whatever the geometry.
    every = np.tile(np.arange(len(train)), (len(queries), 1))
    np.testing.assert_allclose(
        centred_novelty(queries, every, lambda r: train[r], mean, k), _brute(queries, train, k), atol=1e-9
    )


def test_a_set_of_copies_falls_back_to_raw_cosine():
    v = normalize(np.array([[0.6, -0.8, 0.0]]))
    train = np.repeat(v, 5, axis=0)
    mean = training_mean(lambda r: train[r], 5)
    rows = np.tile(np.arange(5), (2, 1))
    other = normalize(np.array([[0.0, 0.0, 1.0]]))
    got = centred_novelty(np.concatenate([v, other]), rows, lambda r: train[r], mean, 3)
    np.testing.assert_allclose(got, [0.0, 1.0], atol=1e-7)  # a copy is not novel; an orthogonal input is
    assert centred_novelty(v[:0], rows[:0], lambda r: train[r], mean, 3).shape == (0,)


def test_the_mean_of_a_large_set_comes_from_a_fixed_sample():
    n = MEAN_SAMPLE + 5000
    calls = []

    def rows_of(r):
        calls.append(len(r))
        return np.ones((len(r), 3), np.float32) * (r[:, None] % 2)

    mean = training_mean(rows_of, n)
    assert sum(calls) == MEAN_SAMPLE and max(calls) <= 8192
    np.testing.assert_allclose(mean, 0.5, atol=0.02)
    np.testing.assert_array_equal(training_mean(rows_of, n), mean)  # every replica computes the same mean
    assert candidates_for(10, 7) == 7 and candidates_for(20, 10_000) == 100 and candidates_for(1, 0) == 1
