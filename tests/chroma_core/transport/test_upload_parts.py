"""Uploads go up in bounded parts, each a batch of its own that can be sent again (issue 18, item 10)."""

from __future__ import annotations

import pytest

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records, new_batch_id
from chroma_core.transport import http
from tests.conftest import SET, ChromaServer, clusters

pytestmark = pytest.mark.slow


def test_a_large_upload_goes_in_idempotent_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(http, "UPLOAD_PART_BYTES", 16 * 1024)  # 16 dims: 48 rows a part, 7 parts for 300 rows
    x, _, _ = clusters(n_per=100, dim=16, k=3)
    n = len(x)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), "training", 16, "t")
    records = Records(x, [f"r{i}" for i in range(n)], [f"/{i}" for i in range(n)], [None] * n, [None] * n, [0.0] * n)
    server = ChromaServer(tmp_path / "data").start()
    transport = http.HTTPTransport(load_config(chroma_url=server.url, environ={}))
    sizes: list[int] = []
    send = transport._upload

    def counting(batch_id, body, what, gzipped):
        sizes.append(len(body()))
        return send(batch_id, body, what, gzipped)

    monkeypatch.setattr(transport, "_upload", counting)
    try:
        first = transport.upload(header, records)
        assert (first.batch_id, first.read, first.stored, first.duplicates, first.ok) == (
            header.batch_id,
            n,
            n,
            0,
            True,
        )
        assert len(sizes) == 7 and max(sizes) <= 16 * 1024
        again = transport.upload(header, records)  # a retry of the whole upload stores nothing twice
        assert (again.read, again.stored, again.duplicates) == (n, 0, n)
        assert transport.get_set(header.set_id).training == n
    finally:
        transport.close()
        server.stop()
