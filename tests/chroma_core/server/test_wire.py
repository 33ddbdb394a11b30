"""The binary query body's codec (server/wire.py): a round trip, and a clear refusal for every malformed body."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chroma_core.server.wire import ERRORS, ApiError, decode_query, encode_query


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 20),
    dimension=st.integers(1, 40),
    uris=st.booleans(),
    thresholds=st.sampled_from([None, {"k": 3}, {"novelty": 0.25, "percentile": 99}]),
    seed=st.integers(0, 2**16),
)
def test_round_trip(count, dimension, uris, thresholds, seed):
    x = np.random.default_rng(seed).normal(size=(count, dimension)).astype(np.float32)
    names = [f"/q/{i}" for i in range(count)] if uris else None
    body = encode_query(x, names, [{"label": "a"}] * count, thresholds)
    decoded = decode_query(body, max_rows=64, max_dimension=64)
    assert np.array_equal(decoded.vectors, x) and decoded.vectors.dtype == np.float32
    assert decoded.input_uris == names and decoded.thresholds == thresholds
    assert decoded.inferences == [{"label": "a"}] * count
    # The matrix starts on a 4-byte boundary, so it is read in place.
    assert (len(body) - x.nbytes) % 4 == 0


def _body(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<4sI", b"CHQ1", len(text)) + text + payload


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"CHQ", "query_format", "at least 8 bytes"),
        (b"JSON" + b"\0" * 12, "query_format", "starts with b'CHQ1'"),
        (struct.pack("<4sI", b"CHQ1", 999) + b"{}", "query_format", "only 2 follow"),
        (struct.pack("<4sI", b"CHQ1", 3) + b"{x}", "query_format", "not valid UTF-8 JSON"),
        (struct.pack("<4sI", b"CHQ1", 2) + b"[]", "query_format", "JSON object"),
        (_body({"count": 0, "dimension": 2}, b""), "query_format", "'count' must be a whole number"),
        (_body({"count": 1, "dimension": True}, b""), "query_format", "'dimension'"),
        (_body({"count": 2, "dimension": 2}, b"\0" * 12), "query_format", "(16 bytes), but 12 bytes follow"),
        (_body({"count": 1, "dimension": 2}, b"\0" * 20), "query_format", "but 20 bytes follow"),
        (_body({"count": 9, "dimension": 2}, b"\0" * 72), "too_many_embeddings", "the limit is 8"),
        (_body({"count": 1, "dimension": 65}, b"\0" * 260), "invalid_request", "over the limit of 64"),
        (_body({"count": 1, "dimension": 1, "extra": 1}, b"\0" * 4), "invalid_request", "unknown header field"),
        (_body({"count": 1, "dimension": 1, "input_uris": "/a"}, b"\0" * 4), "invalid_request", "input_uris"),
        (_body({"count": 1, "dimension": 1, "input_uris": [3]}, b"\0" * 4), "invalid_request", "must be a string"),
        (_body({"count": 1, "dimension": 1, "thresholds": []}, b"\0" * 4), "invalid_request", "thresholds"),
    ],
)
def test_malformed_bodies_are_refused_with_their_code(body, code, words):
    with pytest.raises(ApiError) as caught:
        decode_query(body, max_rows=8, max_dimension=64)
    assert caught.value.code == code and caught.value.status == ERRORS[code][0]
    assert words in str(caught.value), str(caught.value)
