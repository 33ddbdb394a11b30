"""What the service's application costs for one request, in process: no socket, no HTTP parser, no client.

    python benchmarks/_app_cost.py ROWS CALLS    (prints JSON: CPU ms a call of GET /v1/health and of a query)

The ASGI application that ``chroma serve`` runs is called directly, with the request already received, so what is
measured is the routing, middleware, body reading, thread hop and handler of each route; the engine's own search
is kept small (``ROWS`` training vectors). bench_wire.py runs it for this tree and, with ``--against``, for an
older tree (on ``PYTHONPATH``), in turn: it uses nothing but the public ``create_app``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records
from chroma_core.server.app import create_app
from chroma_core.server.wire import QUERY_CONTENT_TYPE, encode_query
from chroma_core.transport import LocalTransport

DIM = 384
ES = EmbeddingSet.from_dict({"model": "bench", "layer": "app-cost"})
_HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": _HEADERS + headers,
        "state": {},
    }


async def _measure(rows: int, calls: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        app = create_app(Path(d))
        engine = app.state.service.tenants.engine("default")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(rows, DIM)).astype(np.float32)
        ids, uris = [f"t{i}" for i in range(rows)], [f"/t/{i}" for i in range(rows)]
        records = Records(x, ids, uris, [None] * rows, [None] * rows, [0.0] * rows)
        LocalTransport(engine=engine).upload(BatchHeader("app-cost", ES, "training", DIM, "t"), records)
        body = encode_query(rng.normal(size=(1, DIM)).astype(np.float32), ["/one"])
        query_headers = [(b"content-type", QUERY_CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        requests = {
            "health": (_scope("GET", "/v1/health", []), b""),
            "query": (_scope("POST", f"/v1/sets/{ES.id}/query", query_headers), body),
        }

        async def call(scope: dict[str, Any], data: bytes) -> None:
            messages = [{"type": "http.request", "body": data, "more_body": False}]
            status: list[int] = []

            async def receive() -> dict[str, Any]:
                return messages.pop() if messages else {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await app(dict(scope), receive, send)
            if status != [200]:
                raise SystemExit(f"{scope['path']} answered {status}")

        out: dict[str, list[float]] = {name: [] for name in requests}
        async with app.router.lifespan_context(app):
            for scope, data in requests.values():  # warm: the set's model, the first hop's thread
                for _ in range(200):
                    await call(scope, data)
            for _ in range(3):
                for name, (scope, data) in requests.items():
                    cpu = time.process_time()
                    for _ in range(calls):
                        await call(scope, data)
                    out[name].append((time.process_time() - cpu) / calls * 1e3)
        return {name: float(np.median(v)) for name, v in out.items()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_measure(int(sys.argv[1]), int(sys.argv[2])))))
