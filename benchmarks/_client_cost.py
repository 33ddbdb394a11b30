"""Section 2c of bench_wire.py: what the HTTP client costs for one request, by client library, interleaved.

A bare ``GET /v1/health`` and a one-vector binary query to the same served set, each sent by ``requests`` (the
transport's session), a bare keep-alive ``http.client`` connection, ``httpx`` where it is installed, and the
transport itself on each of its two paths (``HTTPTransport.query`` on its keep-alive connections, and with them
turned off, through requests): p50 wall ms, and CPU ms a call of the client and of the server.
"""

from __future__ import annotations

import http.client
import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from _util import cpu_seconds

from chroma_core.config import load_config
from chroma_core.server.wire import QUERY_CONTENT_TYPE, encode_query
from chroma_core.transport.http import HTTPTransport
from chroma_core.types import QueryRequest


def _httpx() -> Any:
    for name in ("httpx", "httpx2"):  # httpx2: a fork with httpx's API, in some environments instead
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _clients(transport: HTTPTransport, set_id: str, q: np.ndarray) -> dict[str, Callable[[], object]]:
    base, session = transport.base, transport.session
    parts = urlsplit(base)
    path, body = f"/sets/{set_id}/query", encode_query(q[None, :], ["/one"])
    binary = {"Content-Type": QUERY_CONTENT_TYPE}
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
    headers = dict(session.headers)

    def bare(method: str, target: str, data: bytes | None, extra: dict[str, str]) -> Callable[[], object]:
        def call() -> object:
            for again in (False, True):  # as any keep-alive client: once more if the service closed it idle
                try:
                    conn.request(method, parts.path + target, body=data, headers={**headers, **extra})
                    return conn.getresponse().read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    conn.close()
                    if again:
                        raise
            return None

        return call

    request = QueryRequest.of(set_id, q[None, :], ["/one"])
    plain = HTTPTransport(load_config(chroma_url=base, environ={}))
    plain._connections = None  # the same transport on its requests path only
    clients: dict[str, Callable[[], object]] = {
        "requests health": lambda: session.get(base + "/health", timeout=(3.05, 30)).content,
        "http.client health": bare("GET", "/health", None, {}),
        "requests query": lambda: session.post(base + path, data=body, headers=binary, timeout=(3.05, 30)).content,
        "http.client query": bare("POST", path, body, binary),
        "transport.query, keep-alive": lambda: transport.query(request),
        "transport.query, requests": lambda: plain.query(request),
    }
    httpx = _httpx()
    if httpx is not None:
        client = httpx.Client(trust_env=False, headers=headers)
        clients["httpx health"] = lambda: client.get(base + "/health").content
        clients["httpx query"] = lambda: client.post(base + path, content=body, headers=binary).content
    return clients


def section_clients(transport: HTTPTransport, set_id: str, q: np.ndarray, rounds: int, server: int) -> None:
    """Print section 2c: each client's health and query, ``rounds`` interleaved runs of 300 calls, medians."""
    clients = _clients(transport, set_id, q)
    for call in clients.values():  # warm: connections open, the set's model loaded
        for _ in range(30):
            call()
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in clients}
    n = 300
    for _ in range(rounds):
        for name, call in clients.items():
            server0, client0, walls = cpu_seconds(server), time.process_time(), []
            for _ in range(n):
                t0 = time.perf_counter()
                call()
                walls.append(time.perf_counter() - t0)
            client_cpu, server_cpu = time.process_time() - client0, cpu_seconds(server) - server0
            runs[name].append((statistics.median(walls) * 1e3, client_cpu / n * 1e3, server_cpu / n * 1e3))
    print(
        f"\n2c. the client, by library (1,000 training vectors; {n} calls a run, median of {rounds} interleaved runs): "
        "p50 wall ms, CPU ms a call client + server"
    )
    for name, samples in runs.items():
        wall, client, server_cpu = (statistics.median(v) for v in zip(*samples, strict=True))
        print(f"  {name:28s} wall {wall:6.3f}   CPU {client:6.3f} + {server_cpu:6.3f}")
