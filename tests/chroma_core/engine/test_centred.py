from __future__ import annotations

import numpy as np

from chroma_core.engine.centred import MEAN_SAMPLE, CentredNovelty, candidates_for, training_mean
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


def _raw(queries, train, m):
    """The search's answer: the ``m`` raw-cosine nearest rows and their similarities, most similar first."""
    sims = queries @ train.T
    rows = np.argsort(-sims, axis=1)[:, :m]
    return np.take_along_axis(sims, rows, 1), rows


def test_centred_similarities_from_raw_ones_bound_a_full_search_and_equal_it_with_every_row():
    rng = np.random.default_rng(0)
    # Anisotropic, as sentence embeddings are: a strong common direction plus clusters.
    common = rng.normal(size=32)
    centres = rng.normal(size=(5, 32))
    train = normalize(4 * common + centres[rng.integers(5, size=400)] + 0.5 * rng.normal(size=(400, 32)))
    queries = normalize(4 * common + rng.normal(size=(30, 32)))
    k = 10
    reads = []

    def rows_of(r):
        reads.append(len(r))
        return train[r]

    model = CentredNovelty(rows_of, len(train))
    assert candidates_for(k, len(train)) == 50
    got = model.novelty(queries, *_raw(queries, train, 50), k)
    # Re-ranking a subset can only miss close rows, never invent them: at least the full search's distance. (On the
    # real corpora of the benchmark, the AUROC and TPR came out the same to three decimals as a full search.)
    assert (got >= _brute(queries, train, k) - 1e-6).all()  # float32 raw similarities: exact to ~1e-7
    # With every training row as a candidate it is the brute force, whatever the geometry.
    np.testing.assert_allclose(
        model.novelty(queries, *_raw(queries, train, 400), k), _brute(queries, train, k), atol=1e-5
    )
    # Each training row is read once for its projection, however often it is a candidate.
    assert sum(reads) == len(train) + len(train)  # the mean (all 400 rows), then each row's projection once
    model.novelty(queries, *_raw(queries, train, 400), k)
    assert sum(reads) == 2 * len(train)


def test_a_set_of_copies_falls_back_to_raw_cosine():
    v = normalize(np.array([[0.6, -0.8, 0.0]]))
    train = np.repeat(v, 5, axis=0)
    model = CentredNovelty(lambda r: train[r], 5)
    queries = np.concatenate([v, normalize(np.array([[0.0, 0.0, 1.0]]))])
    got = model.novelty(queries, *_raw(queries, train, 5), 3)
    np.testing.assert_allclose(got, [0.0, 1.0], atol=1e-6)  # a copy is not novel; an orthogonal input is
    assert model.novelty(queries[:0], np.zeros((0, 5)), np.zeros((0, 5), int), 3).shape == (0,)


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


def test_the_per_label_score_is_the_closest_labels_centred_knn():
    rng = np.random.default_rng(1)
    centres = 3 * rng.normal(size=(3, 16))
    labels = rng.integers(3, size=300)
    train = normalize(rng.normal(size=16) + centres[labels] + rng.normal(size=(300, 16)))
    queries = normalize(rng.normal(size=16) + centres[[0, 1, 2, 0]] + rng.normal(size=(4, 16)))
    model = CentredNovelty(lambda r: train[r], len(train))
    mu = train.astype(np.float64).mean(0)
    ct = (train - mu) / np.linalg.norm(train - mu, axis=1, keepdims=True)
    cq = (queries - mu) / np.linalg.norm(queries - mu, axis=1, keepdims=True)
    expect = np.min(
        [1 - (-np.sort(-(cq @ ct[labels == c].T), axis=1)[:, :5]).mean(1) for c in range(3)], axis=0
    )  # brute force: every row of every label
    got = model.novelty(queries, *_raw(queries, train, 300), 5, labels)
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert (got >= model.novelty(queries, *_raw(queries, train, 300), 5) - 1e-9).all()  # one label: never closer
    # A label with fewer than k rows among the candidates does not count; with none left, the plain score.
    only = model.novelty(queries, *_raw(queries, train, 4), 5, labels)
    np.testing.assert_allclose(only, model.novelty(queries, *_raw(queries, train, 4), 5), atol=1e-12)


def test_label_codes_take_the_label_else_the_prediction():
    from chroma_core.engine.centred import label_codes

    inferences = [None, {"probabilities": {"a": 0.9, "b": 0.1}}, None, {"label": "b", "score": 0.7}, None]
    codes = label_codes(["a", None, {"x": 1, "y": 2}, None, None], inferences)
    assert codes[0] == codes[1] and codes[3] not in (codes[0], codes[2]) and codes[4] == -1
    assert label_codes([{"y": 2, "x": 1}], [None])[0] == 0  # canonical JSON: key order does not matter


def _per_label_loop(centred, codes, kk):
    """The class-conditional minimum one label at a time (how it was computed before it was vectorised)."""
    best = np.full(len(centred), np.inf)
    for code in np.unique(codes):
        mine = codes == code
        enough = mine.sum(axis=1) >= kk
        if enough.any():
            part = np.where(mine[enough], centred[enough], -np.inf)
            near = -np.partition(-part, kk - 1, axis=1)[:, :kk]
            best[enough] = np.minimum(best[enough], 1.0 - near.mean(axis=1))
    return best


def test_every_label_of_a_batch_ranked_at_once_equals_one_label_at_a_time_bit_for_bit():
    from chroma_core.engine import centred

    rng = np.random.default_rng(3)
    for labels, width, kk in ((3, 200, 10), (40, 200, 5), (1, 50, 20), (7, 30, 1), (500, 400, 2)):
        sims = rng.uniform(-1, 1, size=(300, width))
        sims[:, -1] = -np.inf  # a missing candidate (the search's padding)
        codes = rng.integers(-1, labels, size=(300, width))  # -1 (no label) counts as a label of its own
        got = centred._closest_label(sims, codes, kk)
        np.testing.assert_array_equal(got, _per_label_loop(sims, codes, kk))
        assert np.isfinite(got).any()
    small = centred._PAIRS
    try:  # pairs ranked in several chunks give the same values
        centred._PAIRS = 7
        np.testing.assert_array_equal(centred._closest_label(sims, codes, kk), _per_label_loop(sims, codes, kk))
    finally:
        centred._PAIRS = small


def test_projections_of_every_row_up_front_give_the_same_scores_and_no_reads_per_query():
    rng = np.random.default_rng(4)
    train = normalize(2 * rng.normal(size=24) + rng.normal(size=(3000, 24)))
    queries = normalize(2 * rng.normal(size=24) + rng.normal(size=(40, 24)))
    labels = rng.integers(-1, 6, size=len(train))
    reads = []

    def rows_of(r):
        reads.append(len(r))
        return train[r]

    lazy = CentredNovelty(lambda r: train[r], len(train))
    ahead = CentredNovelty(rows_of, len(train), every_row=True)
    assert sum(reads) == 2 * len(train) and max(reads) <= 8192  # the mean, then every projection, in chunks
    for lab in (None, labels):
        raw = _raw(queries, train, 200)
        np.testing.assert_array_equal(ahead.novelty(queries, *raw, 10, lab), lazy.novelty(queries, *raw, 10, lab))
        for i in (0, 17, 39):  # a lone query gets its row of the batch
            one = ahead.novelty(queries[i : i + 1], raw[0][i : i + 1], raw[1][i : i + 1], 10, lab)
            assert one[0] == ahead.novelty(queries, *raw, 10, lab)[i]
    assert sum(reads) == 2 * len(train)  # no query read a training vector
