"""zero-shot-classification (tiny BERT-NLI): one vector per input, never one per candidate label, and its value is
the documented one (chroma_integrations/transformers/text.py, ZeroShotTextKind): the premise's tokens
(``attention_mask * (token_type_ids == 0)``: [CLS], the premise, the first [SEP]) of the last hidden state,
averaged over every (premise, hypothesis) pair the pipeline makes for that input. Computed here from the model."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_integrations.transformers import ChromaPipeline
from tests.chroma_integrations.test_transformers_kinds import TEXTS, Calls, buffered

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LABELS = ["movie", "city", "music"]
TEMPLATE = "This example is {}."  # the pipeline's default hypothesis template


def pair_states(pipe, premise, labels):
    """Each (premise, hypothesis) pair run alone through the base model: its last hidden state and its inputs."""
    enc = pipe.tokenizer([premise] * len(labels), [TEMPLATE.format(x) for x in labels], return_tensors="pt")
    with torch.no_grad():
        hidden = pipe.model.base_model(**enc).last_hidden_state
    return hidden, enc


def premise_embedding(pipe, premise, labels):
    hidden, enc = pair_states(pipe, premise, labels)
    mask = (enc["attention_mask"] * (enc["token_type_ids"] == 0)).unsqueeze(-1).float()
    return ((hidden * mask).sum(dim=(0, 1)) / mask.sum()).numpy()


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_one_vector_per_premise_equal_to_its_premise_tokens_over_every_pair(zero_shot_pipe, batch_size):
    calls = Calls(zero_shot_pipe.model)
    w = ChromaPipeline(zero_shot_pipe)
    try:
        out = w(TEXTS, candidate_labels=LABELS, batch_size=batch_size)
    finally:
        w.close()
        calls.close()
    assert out == zero_shot_pipe(TEXTS, candidate_labels=LABELS, batch_size=batch_size)
    # The model ran over every pair (len(TEXTS) * len(LABELS) rows), but one vector per premise was logged.
    assert calls.n == -(-len(TEXTS) * len(LABELS) // batch_size)
    got, uris, previews = buffered(w)
    assert got.shape == (len(TEXTS), zero_shot_pipe.model.config.hidden_size)
    assert previews == TEXTS
    want = np.stack([premise_embedding(zero_shot_pipe, t, LABELS) for t in TEXTS])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_hypothesis_tokens_are_left_out_and_the_labels_shift_the_vector_only_slightly(zero_shot_pipe):
    premise = TEXTS[0]
    hidden, enc = pair_states(zero_shot_pipe, premise, LABELS)
    whole = ((hidden * enc["attention_mask"].unsqueeze(-1)).sum(dim=(0, 1)) / enc["attention_mask"].sum()).numpy()
    w = ChromaPipeline(zero_shot_pipe)
    w(premise, candidate_labels=LABELS)
    w(premise, candidate_labels=["dog"])
    w.close()
    vectors = buffered(w)[0]
    # Pooling the whole pair (hypothesis included) would give another vector: the mask really drops it.
    assert not np.allclose(vectors[0], whole, atol=1e-3)
    # Other candidate labels: the premise's states still attend to the hypothesis, so close but not equal.
    assert not np.array_equal(vectors[0], vectors[1])
    cos = float(vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1]))
    assert cos > 0.9
    np.testing.assert_allclose(vectors[1], premise_embedding(zero_shot_pipe, premise, ["dog"]), rtol=1e-5, atol=1e-5)
