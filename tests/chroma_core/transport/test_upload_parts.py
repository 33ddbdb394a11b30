"""Uploads go up in bounded parts, each a batch of its own that can be sent again (issue 18, item 10)."""

from __future__ import annotations

import pytest

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records, new_batch_id
from chroma_core.transport import http
from tests.conftest import SET, ChromaServer, clusters

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("binary", "expected_parts"), [(True, 6), (False, 7)])
def test_a_large_upload_goes_in_idempotent_parts(tmp_path, monkeypatch, binary, expected_parts):
    # 16 dims: 51 rows a part (6 parts for 300 rows) in the binary form, 48 (7 parts) as JSONL.
    monkeypatch.setattr(http, "UPLOAD_PART_BYTES", 16 * 1024)
    x, _, _ = clusters(n_per=100, dim=16, k=3)
    n = len(x)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), "training", 16, "t")
    records = Records(x, [f"r{i}" for i in range(n)], [f"/{i}" for i in range(n)], [None] * n, [None] * n, [0.0] * n)
    server = ChromaServer(tmp_path / "data").start()
    transport = http.HTTPTransport(load_config(chroma_url=server.url, environ={}))
    transport._binary_uploads = binary
    sizes: list[int] = []
    send = transport._send  # each attempt, on either of the transport's paths

    def counting(method, path, timeout, kwargs):
        if path.endswith("/batches"):
            sizes.append(len(kwargs["data"]() if callable(kwargs["data"]) else kwargs["data"]))
        return send(method, path, timeout, kwargs)

    monkeypatch.setattr(transport, "_send", counting)
    try:
        first = transport.upload(header, records)
        assert (first.batch_id, first.read, first.stored, first.duplicates, first.ok) == (
            header.batch_id,
            n,
            n,
            0,
            True,
        )
        assert len(sizes) == expected_parts and max(sizes) <= 16 * 1024
        again = transport.upload(header, records)  # a retry of the whole upload stores nothing twice
        assert (again.read, again.stored, again.duplicates) == (n, 0, n)
        assert transport.get_set(header.set_id).training == n
    finally:
        transport.close()
        server.stop()
