"""text-generation (tiny GPT-2): the logged vector is the prompt's own embedding, computed here from the model."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_integrations.transformers import ChromaPipeline
from tests.chroma_integrations.test_transformers_kinds import PROMPTS, buffered

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def prompt_states(pipe, prompt):
    """The base model's last hidden states over the prompt's tokens alone (no padding): ``(tokens, dim)``."""
    ids = pipe.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return pipe.model.base_model(input_ids=ids).last_hidden_state[0].numpy()


def logged(pipe, prompts, **kwargs):
    w = ChromaPipeline(pipe, pooling=kwargs.pop("pooling", "mean"))
    try:
        w(prompts, **kwargs)
    finally:
        w.close()
    return buffered(w)[0]


def test_mean_is_the_mean_of_the_prompts_prefill_states(generation_pipe):
    got = logged(generation_pipe, PROMPTS, batch_size=1, max_new_tokens=4)
    want = np.stack([prompt_states(generation_pipe, p).mean(axis=0) for p in PROMPTS])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_vector_does_not_depend_on_how_many_tokens_are_generated(generation_pipe):
    one = logged(generation_pipe, PROMPTS, batch_size=1, max_new_tokens=1)
    many = logged(generation_pipe, PROMPTS, batch_size=1, max_new_tokens=12)
    # The same prefill pass, bit for bit: no decoding step leaks into the vector.
    np.testing.assert_array_equal(one, many)


def test_last_pooling_under_left_padding_picks_each_prompts_last_real_token(generation_pipe):
    assert generation_pipe.tokenizer.padding_side == "left"
    lengths = [len(generation_pipe.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]
    assert len(set(lengths)) == len(PROMPTS)  # one batch, every row padded differently
    got = logged(generation_pipe, PROMPTS, batch_size=len(PROMPTS), max_new_tokens=2, pooling="last")
    states = [prompt_states(generation_pipe, p) for p in PROMPTS]
    want = np.stack([s[-1] for s in states])
    # Padded rows run with shifted positions and masked pad columns: equal to a few low bits.
    np.testing.assert_allclose(got, want, atol=1e-4)
    # The check can fail: a right-padding reading (position length-1 of the padded row) or the first token differ.
    for i, s in enumerate(states):
        if len(s) > 1:
            assert not np.allclose(got[i], s[0], atol=1e-2)
