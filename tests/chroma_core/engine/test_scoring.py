from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from chroma_core.engine.index import ExactIndex, normalize
from chroma_core.engine.scoring import SetModel, class_scores, predicted_label, uncertainty_of
from chroma_core.types import QueryRequest, Thresholds
from tests.conftest import clusters


def ask(model, vectors, uris, infs, th):
    return model.query(QueryRequest.of(model.set_id, vectors, uris, infs, th))


def model_of(x, labels=None, infs=None):
    m = SetModel("s", x.shape[1])
    n = len(x)
    m.add(x, [f"/t/{i}" for i in range(n)], labels or [None] * n, infs or [None] * n)
    return m


def test_exact_index_matches_brute_force():
    rng = np.random.default_rng(0)
    x = normalize(rng.normal(size=(500, 16)))
    idx = ExactIndex(16)
    idx.add(x[:100])
    idx.add(x[100:])  # incremental adds
    q = normalize(rng.normal(size=(7, 16)))
    sims, rows = idx.search(q, 10)
    expect = np.argsort(-(q @ x.T), axis=1)[:, :10]
    np.testing.assert_array_equal(rows, expect)
    assert np.all(np.diff(sims, axis=1) <= 0)
    assert idx.search(q, 1000)[1].shape == (7, 500)


@pytest.mark.parametrize("kind", ["knn_mean", "knn_kth", "knn_centred", "knn_class_centred"])
def test_calibrated_novelty_flags_about_the_promised_share_of_in_distribution_queries(kind):
    x, labels, centers = clusters(n_per=400, dim=32, seed=1)
    rng = np.random.default_rng(9)
    held_out = np.concatenate([c + 0.3 * rng.normal(size=(400, 32)) for c in centers]).astype(np.float32)
    m = model_of(x, list(labels))  # labelled, so that knn_class_centred conditions on them
    th = Thresholds(novelty_score=kind)
    results = ask(m, held_out, [str(i) for i in range(len(held_out))], [None] * len(held_out), th)
    rate = np.mean(["out_of_distribution" in r.recommendations for r in results])
    assert 0.02 <= rate <= 0.09, rate
    p99 = ask(m, held_out, ["q"] * len(held_out), [None] * len(held_out), Thresholds(percentile=99, novelty_score=kind))
    assert np.mean(["out_of_distribution" in r.recommendations for r in p99]) < rate
    far = (np.random.default_rng(5).normal(size=(20, 32)) * 2).astype(np.float32)
    assert all("out_of_distribution" in r.recommendations for r in ask(m, far, ["f"] * 20, [None] * 20, th))


def test_centred_novelty_is_the_knn_mean_measured_from_the_training_mean():
    # 40 training rows: fewer than the 50 candidates re-ranked, so the engine's score must be the brute force.
    rng = np.random.default_rng(3)
    x = (3.0 * rng.normal(size=16) + rng.normal(size=(40, 16))).astype(np.float32)
    q = (3.0 * rng.normal(size=16) + rng.normal(size=(6, 16))).astype(np.float32)
    m = model_of(x)
    got = [r.scores["novelty"] for r in ask(m, q, ["q"] * 6, [None] * 6, Thresholds(novelty_score="knn_centred"))]
    unit = normalize(x).astype(np.float64)
    mu = unit.mean(0)

    def centred(v):
        c = normalize(v).astype(np.float64) - mu
        return c / np.linalg.norm(c, axis=1, keepdims=True)

    sims = centred(q) @ centred(x).T
    expect = 1 - (-np.sort(-sims, axis=1)[:, :10]).mean(1)
    np.testing.assert_allclose(got, expect, atol=1e-5)
    plain = [r.scores["novelty"] for r in ask(m, q, ["q"] * 6, [None] * 6, Thresholds(novelty_score="knn_mean"))]
    assert not np.allclose(got, plain)  # a different score, not the raw one under another name


def test_out_of_distribution_and_near_duplicates():
    x, _, centers = clusters(n_per=100, dim=32)
    m = model_of(x)
    far = (np.random.default_rng(5).normal(size=(20, 32)) * 2).astype(np.float32)
    results = ask(m, far, ["f"] * 20, [None] * 20, Thresholds())
    assert all(r.training_recommended and "out_of_distribution" in r.recommendations for r in results)
    dup = ask(m, x[:20] * 1.0001, ["d"] * 20, [None] * 20, Thresholds())
    assert all(r.not_useful and not r.training_recommended for r in dup)
    assert dup[3].nearest[0].input_uri == "/t/3" and dup[3].nearest[0].similarity > 0.999
    assert dup[0].scores["nearest_similarity"] == pytest.approx(1.0, abs=1e-5)


def test_uncertainty_from_class_scores_calibrated_on_training():
    x, labels, _ = clusters(n_per=100, dim=16)
    infs = [{"label": lab, "score": 0.95} for lab in labels]
    m = model_of(x, infs=infs)
    q = x[:2] + 0.05
    out = ask(
        m,
        q,
        ["a", "b"],
        [[{"label": "c0", "score": 0.5}, {"label": "c1", "score": 0.45}], {"label": "c0", "score": 0.97}],
        Thresholds(near_duplicate=0.0),
    )
    assert "uncertain" in out[0].recommendations and out[0].training_recommended
    assert "uncertain" not in out[1].recommendations
    assert out[0].scores["uncertainty"] == pytest.approx(0.95)


def test_label_disagreement():
    x, labels, _ = clusters(n_per=100, dim=16)
    m = model_of(x, labels=labels)
    # x[0] is class c0; a prediction of c3 disagrees with all its neighbours.
    out = ask(m, x[:1] + 0.2, ["a"], [{"label": "c3", "score": 0.99}], Thresholds(near_duplicate=0.0))
    assert "label_disagreement" in out[0].recommendations and out[0].scores["label_disagreement"] == 1.0
    ok = ask(m, x[:1] + 0.2, ["a"], [{"label": "c0", "score": 0.99}], Thresholds(near_duplicate=0.0))
    assert "label_disagreement" not in ok[0].recommendations


def test_too_little_training_data_says_so():
    x, _, _ = clusters(n_per=3, dim=8, k=2)
    out = ask(model_of(x), x[:1], ["a"], [None], Thresholds())
    assert out[0].recommendations == ("insufficient_training_data",)
    assert not out[0].training_recommended and not out[0].not_useful
    assert out[0].recommendation == "insufficient_training_data"


def test_exact_duplicates_in_training_do_not_break_leave_one_out():
    x = np.repeat(clusters(n_per=20, dim=8)[0], 15, axis=0)  # every vector 15 times: self may fall out of top-k
    cal = model_of(x).calibration(Thresholds())
    assert cal.novelty >= 0 and cal.near_duplicate == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("inferences", "pairs"),
    [
        ({"label": "a", "score": 0.9}, [("a", 0.9)]),
        ([{"label": "a", "score": 0.2}, {"label": "b", "score": 0.8}], [("b", 0.8), ("a", 0.2)]),
        ([[{"label": "a", "score": 0.6}]], [("a", 0.6)]),
        ({"scores": [0.1, 0.7], "labels": ["x", "y"]}, [("y", 0.7), ("x", 0.1)]),
        ({"probabilities": {"x": 0.3, "y": 0.7}}, [("y", 0.7), ("x", 0.3)]),
        ({"text": "hello"}, []),
        (None, []),
    ],
)
def test_class_scores_shapes(inferences, pairs):
    assert class_scores(inferences) == pairs


def test_uncertainty_and_prediction():
    assert uncertainty_of({"label": "a", "score": 0.9}) == pytest.approx(0.2)
    assert uncertainty_of([{"label": "a", "score": 0.5}, {"label": "b", "score": 0.5}]) == 1.0
    assert uncertainty_of({"foo": 1}) is None
    assert predicted_label({"label": "gold"}) == "gold"


@pytest.mark.parametrize("th", [Thresholds(), Thresholds.coerce({"k": 3, "neighbors": 2, "novelty_score": "knn_kth"})])
def test_a_batch_is_answered_as_its_rows_one_by_one(th):
    """The answer path works on whole columns for a batch; each row's answer is the one it gets alone."""
    x, labels, _ = clusters(n_per=60, dim=16, k=4)
    some = [lab if i % 7 else None for i, lab in enumerate(labels)]  # some training rows unlabelled
    model = model_of(x, some, [{"label": lab, "score": 0.5 + 0.1 * (i % 4)} for i, lab in enumerate(labels)])
    rng = np.random.default_rng(5)
    q = np.vstack([x[:20] + 1e-4, rng.normal(size=(40, 16)) * 3]).astype(np.float32)
    infs = [None if i % 3 == 0 else {"label": f"c{i % 5}", "score": 0.55} for i in range(len(q))]
    uris = [f"/q/{i}" for i in range(len(q))]
    batch = ask(model, q, uris, infs, th)
    assert {"near_duplicate", "out_of_distribution"} <= {t for r in batch for t in r.recommendations}
    assert any(r.scores["label_disagreement"] for r in batch) and any(r.scores["uncertainty"] for r in batch)
    for i, together in enumerate(batch):
        alone = ask(model, q[i : i + 1], uris[i : i + 1], infs[i : i + 1], th)[0]
        assert together.recommendations == alone.recommendations
        assert [(n.input_uri, n.label) for n in together.nearest] == [(n.input_uri, n.label) for n in alone.nearest]
        assert [n.similarity for n in together.nearest] == pytest.approx([n.similarity for n in alone.nearest])
        assert together.scores == pytest.approx(alone.scores, abs=1e-6)


@pytest.mark.parametrize(
    ("q", "n", "k"),
    [
        (7, 100, 10),
        (40, 3000, 10),
        (30, 5000, 11),
        (5, 2561, 10),
        (3, 9000, 1),
        (1, 700, 10),
        (1, 9, 10),
        (20, 10_000, 200),  # the per-label score's candidates: groups of 12 or 13 columns
        (6, 3001, 200),
        (4, 1601, 200),  # groups of 2 columns, one left over
        (4, 1599, 200),  # too few columns to group
    ],
)
def test_top_k_is_a_stable_sort_of_each_row(q, n, k):
    from chroma_core.engine.index import top_k

    sims = np.random.default_rng(n).normal(size=(q, n)).astype(np.float32)
    sims[:, 5] = sims[:, 700 % n]  # ties go to the lower column
    sims[0, : n // 2] = sims[0, 0]  # a row of many equal values
    values, cols = top_k(sims, min(k, n))
    expected = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, n)]
    assert np.array_equal(cols, expected) and cols.dtype == np.int64
    assert np.array_equal(values, np.take_along_axis(sims, expected, axis=1))


def test_concurrent_first_queries_calibrate_once(monkeypatch):
    # What a client's retry after a read timeout does: a second request while the first is still calibrating.
    x, _, _ = clusters(n_per=300, dim=16, k=3)
    model = model_of(x)
    calls = []
    real = SetModel._calibrate

    def slow(self, th, n, k):
        calls.append(n)
        time.sleep(0.5)  # long enough for the other request to arrive meanwhile
        return real(self, th, n, k)

    monkeypatch.setattr(SetModel, "_calibrate", slow)
    answers: list[object] = []
    threads = [threading.Thread(target=lambda: answers.append(model.calibration(Thresholds()))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == [900] and len(answers) == 2 and answers[0] is answers[1]
