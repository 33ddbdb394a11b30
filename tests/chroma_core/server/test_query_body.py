"""Queries over real HTTP in both forms (server/query_body.py): the same answers, the same refusals, the limits."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import requests

import chroma
from chroma_core.config import load_config
from chroma_core.server.wire import QUERY_CONTENT_TYPE, encode_query
from chroma_core.transport.http import HTTPTransport
from chroma_core.types import QueryRequest
from chroma_core.vectors import encode_base64
from tests.chroma_core.server.test_service import SET_ID, train
from tests.conftest import SET

pytestmark = pytest.mark.slow

BINARY = {"Content-Type": QUERY_CONTENT_TYPE}


def _post(server, body: bytes, headers: dict[str, str]) -> requests.Response:
    url = f"{server.url}/v1/sets/{SET_ID}/query"
    return requests.post(url, data=body, headers={**server.headers, **headers}, timeout=30)


def test_binary_and_json_bodies_get_the_same_answers(chroma_server):
    x = train(chroma_server.url)
    q = np.vstack([x[:3], np.full((1, 16), 5.0, np.float32)])
    uris = [f"/q/{i}" for i in range(len(q))]
    inferences = [{"label": "c0", "score": 0.6}, None, None, {"label": "c1", "score": 0.99}]
    binary = _post(chroma_server, encode_query(q, uris, inferences, {"k": 3}), BINARY)
    payload = {"embeddings": [encode_base64(v) for v in q], "input_uris": uris, "inferences": inferences}
    as_json = requests.post(
        f"{chroma_server.url}/v1/sets/{SET_ID}/query",
        json={**payload, "thresholds": {"k": 3}},
        headers=chroma_server.headers,
        timeout=30,
    )
    assert binary.status_code == 200 and as_json.status_code == 200, binary.text
    assert binary.json() == as_json.json()
    results = binary.json()["results"]
    assert [r["input_uri"] for r in results] == uris and results[0]["not_useful"]
    assert results[3]["training_recommended"]


def test_binary_refusals_carry_the_wire_codes(chroma_server):
    train(chroma_server.url)
    ok = np.ones((1, 16), np.float32)
    cases = [
        (encode_query(ok)[:-4], 400, "query_format"),  # the matrix is short of its header's shape
        (encode_query(np.full((1, 16), np.nan, np.float32)), 422, "invalid_embedding"),
        (encode_query(np.zeros((1, 16), np.float32)), 422, "invalid_embedding"),
        (encode_query(np.ones((1, 8), np.float32)), 422, "dimension_mismatch"),
        (encode_query(np.ones((1025, 4), np.float32)), 413, "too_many_embeddings"),
        (encode_query(ok, thresholds={"bogus": 1}), 422, "invalid_thresholds"),
        (b"{}", 400, "query_format"),
    ]
    for body, status, code in cases:
        r = _post(chroma_server, body, BINARY)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    nan = _post(chroma_server, encode_query(np.full((1, 16), np.nan, np.float32)), BINARY)
    assert "non-finite" in nan.json()["error"]["message"]
    other = _post(chroma_server, b"x", {"Content-Type": "text/plain"})
    assert other.status_code == 415 and QUERY_CONTENT_TYPE in other.json()["error"]["message"]


def test_binary_bodies_are_bounded_and_keyed_before_they_are_read(chroma_server):
    train(chroma_server.url)
    big = encode_query(np.ones((1024, 1100), np.float32))  # 4.3 MiB: over max_json_bytes (4 MiB)
    r = _post(chroma_server, big, BINARY)
    assert r.status_code == 413 and "the limit is 4194304" in r.json()["error"]["message"]

    def endless():
        yield encode_query(np.ones((1, 16), np.float32))[:8]
        while True:
            yield b"\0" * 65536

    streamed = requests.post(
        f"{chroma_server.url}/v1/sets/{SET_ID}/query", data=endless(), headers={**chroma_server.headers, **BINARY}
    )
    assert streamed.status_code == 413
    nokey = requests.post(f"{chroma_server.url}/v1/sets/{SET_ID}/query", data=big, headers=BINARY, timeout=30)
    assert nokey.status_code == 401


def test_the_client_sends_binary_and_splits_large_batches(chroma_server, content_types):
    x = train(chroma_server.url)
    transport = HTTPTransport(load_config(chroma_url=chroma_server.url, environ={"CHROMA_API_KEY": chroma_server.key}))
    sent = content_types(transport)
    rng = np.random.default_rng(1)
    q = (x[rng.integers(0, len(x), 2500)] + 0.01 * rng.normal(size=(2500, 16))).astype(np.float32)
    results = transport.query(QueryRequest.of(SET, q, [f"/b/{i}" for i in range(len(q))]))
    assert [r.input_uri for r in results] == [f"/b/{i}" for i in range(len(q))]
    assert sent == [QUERY_CONTENT_TYPE] * 3  # 1024 rows a request at most
    one = transport.query(QueryRequest.of(SET, q[1500:1501], ["/one"]))[0]
    assert one.scores == pytest.approx(results[1500].scores, abs=1e-5)  # float32 sums batched or not


def test_the_client_falls_back_to_json_against_an_older_service(older_service, tmp_path, caplog):
    server = older_service
    code = "import chroma_core, sys; print(chroma_core.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "older", capture_output=True, text=True)
    assert where.stdout.startswith(str(tmp_path / "older")), where.stdout + where.stderr
    x = train(server.url)
    transport = HTTPTransport(load_config(chroma_url=server.url, environ={}))
    with caplog.at_level(logging.INFO, logger="chroma"):
        first = transport.query(QueryRequest.of(SET, x[:2], ["/a", "/b"]))
    assert first[0].not_useful and not transport._binary_queries
    assert "takes no binary queries" in caplog.text
    session = chroma.QuerySession(SET, chroma_server_url=server.url, store=False)
    assert session.log(input_uri="/c", embedding=x[5]).nearest[0].input_uri == "/t/5"


def test_json_base64_bodies_are_read_in_one_go_with_the_same_refusals(chroma_server):
    x = train(chroma_server.url)
    url = f"{chroma_server.url}/v1/sets/{SET_ID}/query"

    def post(embeddings):
        return requests.post(url, json={"embeddings": embeddings}, headers=chroma_server.headers, timeout=30)

    rows = [encode_base64(v) for v in x[:3]]
    mixed = post([rows[0], x[1].tolist(), rows[2]])  # a list among them: the row-by-row path
    assert post(rows).json() == mixed.json() and mixed.status_code == 200
    cases = [
        ([rows[0], " " + rows[1]], 200, None),  # whitespace: only the row-by-row path takes it
        ([rows[0], encode_base64(x[1][:8])], 422, "invalid_embedding"),  # two dimensions
        ([encode_base64(np.full(16, np.nan, np.float32))], 422, "invalid_embedding"),
        ([encode_base64(np.zeros(16, np.float32))], 422, "invalid_embedding"),
        (["***"], 422, "invalid_embedding"),
        ([encode_base64(np.ones(20000, np.float32))], 422, "invalid_request"),  # over max_dimension
    ]
    for embeddings, status, code in cases:
        r = post(embeddings)
        assert r.status_code == status and (code is None or r.json()["error"]["code"] == code), r.text
