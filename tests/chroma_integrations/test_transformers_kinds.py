"""Every kind added in issue 19, one table: outputs unchanged, the model run once, one vector per input, the set
dict, and QuerySession answers inline. Each kind's own numbers are checked in its own test module."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chroma
from chroma_integrations.transformers import ChromaPipeline, default_input_uri
from tests.chroma_integrations.conftest import images, waves

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["the movie was great", "awful plot and boring actor", "alice went to paris", "bob loved the music", "the end"]
PROMPTS = ["Once upon a time", "The capital of France is", "hi", "A long prompt about the movie and its music"]

# kind: (fixture, inputs, call kwargs, embedding dimension, generative: the model runs many times per batch)
CASES = {
    "zero-shot-classification": ("zero_shot_pipe", lambda: TEXTS, {"candidate_labels": ["movie", "city", "music"]}, 32),
    "zero-shot-image-classification": ("clip_pipe", lambda: images(5), {"candidate_labels": ["cat", "dog"]}, 16),
    "image-feature-extraction": ("image_feature_pipe", lambda: images(5), {}, 32),
    "audio-classification": ("audio_pipe", lambda: waves(5), {}, 32),
    "automatic-speech-recognition": ("asr_pipe", lambda: waves(5), {}, 32),
    "object-detection": ("detection_pipe", lambda: images(5), {"threshold": 0.0}, 32),
    "text-generation": ("generation_pipe", lambda: PROMPTS, {"max_new_tokens": 4}, 32),
}
ONE_FORWARD_PER_BATCH = {"zero-shot-image-classification", "image-feature-extraction", "audio-classification"}
ONE_FORWARD_PER_BATCH |= {"object-detection"}


@pytest.fixture(params=sorted(CASES))
def case(request):
    fixture, inputs, kwargs, dim = CASES[request.param]
    return request.param, request.getfixturevalue(fixture), inputs(), kwargs, dim


class Calls:
    """Counts how often a module's forward runs (a forward hook: nothing about the call changes)."""

    def __init__(self, module):
        self.n = 0
        self._handle = module.register_forward_hook(self._count)

    def _count(self, *_):
        self.n += 1

    def close(self):
        self._handle.remove()


def buffered(w):
    buf = w.session._default
    return buf.matrix[: buf.n].copy(), list(buf.uris), list(buf.previews)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_outputs_unchanged_and_the_model_runs_as_often_as_bare(case, batch_size):
    task, pipe, inputs, kwargs, dim = case
    calls = Calls(pipe.model)
    bare = pipe(inputs, batch_size=batch_size, **kwargs)
    bare_calls, calls.n = calls.n, 0
    w = ChromaPipeline(pipe)
    try:
        assert w(inputs, batch_size=batch_size, **kwargs) == bare
        assert calls.n == bare_calls  # the model never runs a second time for the embedding
        if task in ONE_FORWARD_PER_BATCH:
            assert calls.n == math.ceil(len(inputs) / batch_size)
        vectors, uris, previews = buffered(w)
        assert vectors.shape == (len(inputs), dim) and np.isfinite(vectors).all()
        assert uris == [default_input_uri(x) for x in inputs] and len(set(uris)) == len(inputs)
        assert all(p for p in previews)
    finally:
        calls.close()
        w.close()


def test_batch_size_does_not_change_the_vectors(case):
    task, pipe, inputs, kwargs, _ = case
    got = []
    for batch_size in (1, len(inputs)):
        w = ChromaPipeline(pipe)
        w(inputs, batch_size=batch_size, **kwargs)
        w.close()
        got.append(buffered(w)[0])
    # Padding changes a few low bits (and a padded audio batch shares one length): close, not equal.
    np.testing.assert_allclose(got[0], got[1], atol=2e-4 if task != "text-generation" else 1e-3)


def test_embedding_set_names_the_kind(case):
    task, pipe, *_ = case
    w = ChromaPipeline(pipe)
    es = w.embedding_set
    w.close()
    assert es["task"] == task and es["pooling"] == "mean" and es["model"]
    assert "config_sha1" in es or "model_version" in es
    assert es["layer"] == ("image_embeds" if task == "zero-shot-image-classification" else "last")


def test_query_mode_answers_inline(case):
    task, pipe, inputs, kwargs, _ = case
    trainer = ChromaPipeline(pipe)
    for _ in range(3):
        trainer(inputs, batch_size=2, **kwargs)
    trainer.save()
    trainer.close()
    seen = []
    q = ChromaPipeline(pipe, mode="query", on_result=lambda i, o, r: seen.append(r), return_results=True)
    pairs = q(inputs[:2], batch_size=2, **kwargs)
    q.close()
    assert [o for o, _ in pairs] == pipe(inputs[:2], batch_size=2, **kwargs)
    assert all(isinstance(r, chroma.QueryResult) for _, r in pairs) and [r for _, r in pairs] == seen
    # 15 training records are below min_training: the answer says so rather than naming neighbours.
    assert all(r.input_uri == default_input_uri(x) for (_, r), x in zip(pairs, inputs[:2], strict=True))


def test_single_input_and_preview_opt_out(case):
    task, pipe, inputs, kwargs, dim = case
    w = ChromaPipeline(pipe, preview=False)
    assert w(inputs[0], **kwargs) == pipe(inputs[0], **kwargs)
    vectors, uris, previews = buffered(w)
    w.close()
    assert vectors.shape == (1, dim) and previews == [None]
