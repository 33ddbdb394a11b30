"""The HTTP transport's two paths on a large set: one-vector queries, interleaved, against one service.

    python benchmarks/bench_client_paths.py [--n 100000] [--rounds 4]

``n`` x 384 clustered unit vectors are stored in one ``chroma serve``; once its index covers them, the same
queries go through ``HTTPTransport.query`` on its keep-alive connections (``http_conn.py``) and, in turn, with
them turned off (requests, the path before): p50 and p99 ms, and CPU ms a query of the client and the server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _util import cpu_seconds, idle, index_covers, serving
from bench_wire import DIM, clustered

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records
from chroma_core.transport.http import HTTPTransport
from chroma_core.types import QueryRequest

ES = EmbeddingSet.from_dict({"model": "bench", "layer": "client-paths"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "server.log"
        with serving(Path(d) / "server", log=log, log_level="info") as (proc, url):
            fast = HTTPTransport(load_config(chroma_url=url, environ={}))
            plain = HTTPTransport(load_config(chroma_url=url, environ={}))
            plain._connections = None  # the requests path only
            x, n = clustered(args.n, 0, centres_seed=0), args.n
            for s in range(0, n, 10_000):
                m = min(10_000, n - s)
                ids, uris = [f"t{i}" for i in range(s, s + m)], [f"/t/{i}" for i in range(s, s + m)]
                records = Records(x[s : s + m], ids, uris, [None] * m, [None] * m, [0.0] * m)
                fast.upload(BatchHeader(f"paths-{s}", ES, "training", DIM, "t"), records)
            t0 = time.monotonic()
            while n >= 20_000 and not index_covers(log, n):
                if time.monotonic() - t0 > 900:
                    sys.exit("the index was not ready in 900 s")
                time.sleep(1)
            print(f"{n:,} x {DIM}: index ready {time.monotonic() - t0:.0f} s after the last upload")
            queries = [QueryRequest.of(ES.id, q[None, :], ["/q"]) for q in clustered(250, 1, centres_seed=0)]
            for request in queries[:50]:
                fast.query(request)
            idle(proc.pid)
            runs: dict[str, list[tuple[float, float, float, float]]] = {"keep-alive": [], "requests": []}
            for _ in range(args.rounds):
                for name, transport in (("keep-alive", fast), ("requests", plain)):
                    server0, client0, walls = cpu_seconds(proc.pid), time.process_time(), []
                    for request in queries:
                        started = time.perf_counter()
                        transport.query(request)
                        walls.append(time.perf_counter() - started)
                    client, server = time.process_time() - client0, cpu_seconds(proc.pid) - server0
                    p99 = float(np.percentile(walls, 99))
                    runs[name].append(
                        (
                            statistics.median(walls) * 1e3,
                            p99 * 1e3,
                            client / len(walls) * 1e3,
                            server / len(walls) * 1e3,
                        )
                    )
            for name, samples in runs.items():
                p50, p99, client, server = (statistics.median(v) for v in zip(*samples, strict=True))
                print(
                    f"  {name:10s} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  CPU a query {client:6.3f} + {server:6.3f} ms "
                    f"(medians of {args.rounds} runs of {len(queries)})"
                )


if __name__ == "__main__":
    main()
