"""automatic-speech-recognition (tiny Whisper): the encoder runs once per input, the decoder once per token, and the
logged vector is the encoder's output pooled over its frames, computed here from the model."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_integrations.transformers import ChromaPipeline
from tests.chroma_integrations.conftest import waves
from tests.chroma_integrations.test_transformers_kinds import Calls, buffered

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def encoder_mean(pipe, wave):
    """The encoder's last hidden state over every frame of one input, averaged (the feature extractor pads to 1 s)."""
    features = pipe.feature_extractor(wave, sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.no_grad():
        return pipe.model.get_encoder()(features).last_hidden_state[0].mean(dim=0).numpy()


def test_encoder_once_per_input_decoder_per_token_vector_is_the_encoders_mean(asr_pipe):
    inputs = waves(4)
    encoder, decoder = Calls(asr_pipe.model.get_encoder()), Calls(asr_pipe.model.get_decoder())
    w = ChromaPipeline(asr_pipe)
    try:
        w(inputs, batch_size=1, generate_kwargs={"min_new_tokens": 3, "max_new_tokens": 3})
    finally:
        w.close()
        encoder.close()
        decoder.close()
    assert encoder.n == len(inputs)
    # At least one decoder pass per generated token for every input; the hook never keeps one of them.
    assert decoder.n >= 3 * len(inputs)
    got = buffered(w)[0]
    want = np.stack([encoder_mean(asr_pipe, x) for x in inputs])
    assert got.shape == (len(inputs), asr_pipe.model.config.d_model)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


class Outputs:
    """Records the encoder's last hidden state each time it runs (one row per chunk of audio)."""

    def __init__(self, module):
        self.seen = []
        self._handle = module.register_forward_hook(lambda _m, _a, out: self.seen.append(out[0].detach().clone()))

    def close(self):
        self._handle.remove()


CHUNKED = {"batch_size": 1, "chunk_length_s": 1.0, "stride_length_s": 0.1, "generate_kwargs": {"max_new_tokens": 2}}


def test_chunked_asr_logs_one_vector_per_input_the_mean_over_every_chunks_frames(asr_pipe):
    rng = np.random.default_rng(11)
    inputs = [(rng.standard_normal(16000 * s) * 0.1).astype(np.float32) for s in (3, 2)]
    want = []
    for x in inputs:  # the bare pipeline, one input at a time: its chunks' encoder states, every frame averaged
        outputs = Outputs(asr_pipe.model.get_encoder())
        try:
            asr_pipe(x, ignore_warning=True, **CHUNKED)
        finally:
            outputs.close()
        assert len(outputs.seen) > 1  # the input really was split
        want.append(torch.cat([h[0] for h in outputs.seen]).mean(dim=0).numpy())
    w = ChromaPipeline(asr_pipe)
    try:
        w(inputs, ignore_warning=True, **CHUNKED)
    finally:
        w.close()
    got = buffered(w)[0]
    assert got.shape == (len(inputs), asr_pipe.model.config.d_model)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch_size", [2, 4])
def test_batched_asr_one_vector_per_input_each_equal_to_its_encoder_mean_alone(asr_pipe, batch_size):
    inputs = waves(5)  # 0.5 s and 1 s recordings: the feature extractor pads each to 1 s
    encoder = Calls(asr_pipe.model.get_encoder())
    w = ChromaPipeline(asr_pipe)
    try:
        out = w(inputs, batch_size=batch_size, generate_kwargs={"min_new_tokens": 3, "max_new_tokens": 3})
    finally:
        w.close()
        encoder.close()
    assert len(out) == len(inputs)
    assert encoder.n == -(-len(inputs) // batch_size)  # once per batch, never once per generated token
    got = buffered(w)[0]
    want = np.stack([encoder_mean(asr_pipe, x) for x in inputs])  # each input run through the encoder alone
    assert got.shape == (len(inputs), asr_pipe.model.config.d_model)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
