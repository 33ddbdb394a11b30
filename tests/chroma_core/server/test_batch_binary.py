"""Binary batch uploads over real HTTP (server/batch_binary.py): the JSONL path's records, refusals and limits."""

from __future__ import annotations

import gzip
import logging
import struct

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import requests

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records, new_batch_id
from chroma_core.server.wire import BATCH_BINARY_TYPE, encode_batch
from chroma_core.transport.http import HTTPTransport
from tests.conftest import SET, clusters

pytestmark = pytest.mark.slow

OTHER_SET = {**SET, "name": SET.get("name", "set") + "-jsonl"}


def _batch(n: int = 60, dim: int = 16, set_dict=SET) -> tuple[BatchHeader, Records]:
    x, labels, _ = clusters(n_per=n // 3, dim=dim, k=3)
    n = len(x)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(set_dict), "training", dim, "2026-12-03T00:00:00Z")
    records = Records(
        x.astype(np.float32),
        [f"r{i}" for i in range(n)],
        [f"/in/{i}" for i in range(n)],
        [{"label": str(lab), "score": 0.5 + i / 1000} for i, lab in enumerate(labels)],
        [str(lab) if i % 4 else None for i, lab in enumerate(labels)],
        [1_760_000_000.0 + i for i in range(n)],
        previews=[f"text {i}" if i % 2 else None for i in range(n)],
    )
    return header, records


def _post(tenant, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{tenant.url}/v1/batches",
        data=body,
        headers={**tenant.headers, "Content-Type": BATCH_BINARY_TYPE, **(headers or {})},
        timeout=60,
    )


def _transport(tenant) -> HTTPTransport:
    return HTTPTransport(load_config(chroma_url=tenant.url, environ={"CHROMA_API_KEY": tenant.key}))


def _stored(transport: HTTPTransport, set_id: str) -> tuple[np.ndarray, list]:
    _, page = transport.records(set_id, "training", 0, 1000)
    order = np.argsort(page.ids)
    rows = [
        (page.ids[i], page.input_uris[i], page.inferences[i], page.labels[i], page.times[i], page.preview(i))
        for i in order
    ]
    return page.vectors[order], rows


def test_a_binary_upload_stores_what_the_jsonl_path_stores(chroma_server, content_types):
    transport = _transport(chroma_server)
    sent = content_types(transport)
    header, records = _batch()
    binary = transport.upload(header, records)
    assert sent == [BATCH_BINARY_TYPE]
    assert (binary.read, binary.stored, binary.ok) == (len(records), len(records), True)

    other_header, _ = _batch(set_dict=OTHER_SET)
    transport._binary_uploads = False
    jsonl = transport.upload(other_header, records)
    assert sent[-1] == "application/x-ndjson" and jsonl.stored == len(records)

    v1, rows1 = _stored(transport, header.set_id)
    v2, rows2 = _stored(transport, other_header.set_id)
    assert rows1 == rows2 and np.array_equal(v1, v2)
    assert rows1[0][2] == records.inferences[0] and rows1[1][5] == "text 1"

    transport._binary_uploads = True
    again = transport.upload(header, records)  # idempotent by batch id and record id
    assert (again.read, again.stored, again.duplicates) == (len(records), 0, len(records))
    transport.close()


def test_a_bad_record_is_a_problem_and_costs_no_neighbour(chroma_server):
    header, records = _batch()
    records.vectors[1] = np.nan
    records.vectors[4] = 0.0
    records.input_uris[2] = ""
    response = _post(chroma_server, gzip.compress(encode_batch(header, records)), {"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["stored"] == len(records) - 3 and not report["ok"]
    # The lines these records would have in the JSONL form of the batch, in order, as the JSONL path says them.
    problems = report["problems"]
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 6"], problems
    assert "NaN" in problems[0] and "input_uri" in problems[1] and "all zeros" in problems[2]


def test_malformed_bodies_are_refused_whole(chroma_server):
    header, records = _batch()
    body = encode_batch(header, records)
    (length,) = struct.unpack_from("<I", body, 4)
    cases = {
        "truncated": body[:-5],
        "trailing bytes": body + b"\0\0\0\0",
        "bad magic": b"XXXX" + body[4:],
        "header cut": body[: 8 + length // 2],
        "header not JSON": body[:8] + b"{" * length + body[8 + length :],
        "corrupt gzip": gzip.compress(body)[:-40],
    }
    for name, bad in cases.items():
        headers = {"Content-Encoding": "gzip"} if "gzip" in name else {}
        response = _post(chroma_server, bad, headers)
        assert response.status_code == 400, name
        assert response.json()["error"]["code"] == "batch_format", name
    short = encode_batch(header, records.subset(range(3)))
    text = short[8 : 8 + struct.unpack_from("<I", short, 4)[0]].replace(b'"count":3', b'"count":4')
    response = _post(chroma_server, short[:8] + text + short[8 + len(text) :])
    assert response.status_code == 400 and "4 entries" in response.json()["error"]["message"]
    assert _transport(chroma_server).get_set(header.set_id) is None  # nothing of any of them was stored


def test_sizes_are_checked_before_what_they_describe_is_read(chroma_server):
    header, records = _batch()
    huge = BatchHeader(header.batch_id, header.embedding_set, "training", 1000, header.created_at)
    body = encode_batch(huge, Records(np.ones((1, 1000), np.float32), ["a"], ["/a"], [None], [None], [0.0]))
    text = body[8 : 8 + struct.unpack_from("<I", body, 4)[0]]
    columns = text.replace(b'"count":1', b'"count":300000')
    # The header announces 1.2 GB of vectors; none follow, and none are waited for.
    response = _post(chroma_server, body[:4] + struct.pack("<I", len(columns)) + columns)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    declared = _post(chroma_server, b"", {"Content-Length": str(300 * 1024 * 1024)})
    assert declared.status_code == 413
    unkeyed = requests.post(
        f"{chroma_server.url}/v1/batches",
        data=encode_batch(header, records),
        headers={"Content-Type": BATCH_BINARY_TYPE},
    )
    assert unkeyed.status_code == 401


def test_the_client_falls_back_to_jsonl_against_an_older_service(older_service, caplog):
    server = older_service
    transport = HTTPTransport(load_config(chroma_url=server.url, environ={}))
    header, records = _batch()
    with caplog.at_level(logging.INFO, logger="chroma"):
        report = transport.upload(header, records)
    assert report.stored == len(records) and not transport._binary_uploads
    assert "takes no binary batches" in caplog.text
    assert transport.get_set(header.set_id).training == len(records)
    transport.close()
