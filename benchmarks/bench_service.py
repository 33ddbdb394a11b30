"""Service benchmarks (issue 4): ingest and query over HTTP on loopback, beside the embedded engine.

    python benchmarks/bench_service.py          # or: nox -s bench

Starts `python -m chroma serve` on 127.0.0.1 with a free port and stops it at the end. The load test sends a fixed
number of requests and stops by itself.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _util import serving
from _wire_ingest import ingest_rate

import chroma
from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records
from chroma_core.transport import LocalTransport, Transport
from chroma_core.transport.http import HTTPTransport
from chroma_core.types import QueryRequest

DIM = 384
ES = EmbeddingSet.from_dict({"model": "bench", "layer": "service"})


def batches(n_batches: int, per: int, tag: str, seed: int) -> list[tuple[BatchHeader, Records]]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        bid = f"{tag}-{b}"
        x = rng.normal(size=(per, DIM)).astype(np.float32)
        out.append(
            (
                BatchHeader(bid, ES, "training", DIM, "t"),
                Records(
                    x,
                    [f"{bid}:{i}" for i in range(per)],
                    [f"/{bid}/{i}" for i in range(per)],
                    [{"label": "a", "score": 0.9}] * per,
                    [None] * per,
                    [0.0] * per,
                ),
            )
        )
    return out


def ingest(make_transport: Callable[[], Transport], clients: int, n_batches: int, per: int, tag: str) -> float:
    """Records per second with ``clients`` concurrent uploaders (each with its own transport)."""
    work = [batches(n_batches // clients, per, f"{tag}-c{c}", c) for c in range(clients)]
    return ingest_rate(make_transport, work)


def ingest_section(local: Callable[[], Transport], http: Callable[[], Transport]) -> None:
    """HTTP ingest against the embedded engine with 1 and 4 clients (issue 16's targets: 0.5x and 0.8x)."""
    per, n = 500, 40  # 20,000 records of 384-d per measurement
    print(f"ingest of {n * per:,} x {DIM}-d records in batches of {per} (records/s; higher is better)")
    for clients, target in ((1, 0.5), (4, 0.8)):
        r_local = ingest(local, clients, n, per, f"local{clients}")
        r_http = ingest(http, clients, n, per, f"http{clients}")
        ratio = r_http / r_local
        print(
            f"  {clients} client(s): embedded {r_local:8.0f}/s   HTTP {r_http:8.0f}/s   ratio {ratio:.2f}x "
            f"(target >= {target}x: {'PASS' if ratio >= target else 'MISS'})"
        )


def query_latency(t: Transport, queries: np.ndarray) -> tuple[float, float]:
    lat = []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        t.query(QueryRequest.of(ES, q[None, :], [f"/q/{i}"]))
        lat.append(time.perf_counter() - t0)
    p50, p99 = np.percentile(lat, [50, 99]) * 1e3
    return float(p50), float(p99)


def load_test(url: str, clients: int = 16, per_client: int = 100, queries: np.ndarray | None = None) -> None:
    assert queries is not None
    errors: list[BaseException] = []
    lat: list[float] = []
    lock = threading.Lock()

    def run(c: int) -> None:
        t = HTTPTransport(load_config(chroma_url=url, environ={}))
        for i in range(per_client):
            t0 = time.perf_counter()
            try:
                t.query(QueryRequest.of(ES, queries[(c * per_client + i) % len(queries)][None, :], ["/load"]))
            except Exception as exc:
                with lock:
                    errors.append(exc)
            with lock:
                lat.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    p50, p99 = np.percentile(lat, [50, 99]) * 1e3
    print(
        f"\nload test: {clients} concurrent clients x {per_client} queries = {clients * per_client} requests "
        f"in {wall:.1f} s ({clients * per_client / wall:.0f} req/s)"
    )
    print(
        f"  errors {len(errors)} (target: none: {'PASS' if not errors else 'MISS'})   p50 {p50:.1f} ms   "
        f"p99 {p99:.1f} ms"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        with serving(root / "server") as (_, url):

            def http() -> Transport:
                return HTTPTransport(load_config(chroma_url=url, environ={}))

            def local() -> Transport:
                return LocalTransport(root / "embedded")

            ingest_section(local, http)

            queries = np.random.default_rng(9).normal(size=(300, DIM)).astype(np.float32)
            lt, ht = local(), http()
            lt.query(QueryRequest.of(ES, queries[:1], ["warm"]))
            ht.query(QueryRequest.of(ES, queries[:1], ["warm"]))
            for _ in range(2):  # interleave to share the machine's noise
                l50, l99 = query_latency(lt, queries)
                h50, h99 = query_latency(ht, queries)
            size = lt.get_set(ES.id).training  # type: ignore[union-attr]
            print(f"\nquery latency, one {DIM}-d query per call against {size:,} training embeddings")
            print(f"  embedded  p50 {l50:6.2f} ms  p99 {l99:6.2f} ms")
            print(
                f"  HTTP      p50 {h50:6.2f} ms  p99 {h99:6.2f} ms   p50 added {h50 - l50:.2f} ms "
                f"(target within 2 ms: {'PASS' if h50 - l50 <= 2 else 'MISS'})"
            )
            load_test(url, queries=queries)


if __name__ == "__main__":
    print(f"chroma {chroma.__version__}")
    main()
