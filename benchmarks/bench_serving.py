"""@recommend overhead (issue 7): decorated vs undecorated predict in the same run.

    python benchmarks/bench_serving.py

Async mode: the added cost per call (target: p50 under 30 µs added). Sync mode: beside a direct
QuerySession.log() of the same embedding, on the embedded engine.

What the tests no longer time (they check what runs on the caller's thread instead), measured here:

- async mode while the service is down (nothing listens on its port; the worker spills): the worst call of
  10,000, beside the same calls on the embedded engine (target: worst under 50 ms);
- sync mode past its budget (a service on 127.0.0.1 that holds every answer for a second): how long a prediction
  takes to come back, beside the budget (target: under 0.5 s with a 100 ms budget).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from _util import free_port, verdict

import chroma
from chroma_integrations.serving import recommend

try:
    from chroma_core.delivery import WorkerOptions
except ImportError:  # before the delivery package (so the same figures can be had from older commits)
    from chroma_core.worker import WorkerOptions  # type: ignore[no-redef]

SET = {"model": "bench", "model_version": "1", "layer": "serving"}


def latencies(fn, xs, repeats: int = 3) -> list[float]:
    out = []
    for _ in range(repeats):
        for x in xs:
            t0 = time.perf_counter()
            fn(x)
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(3000, 384)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        with chroma.TrainingSession(SET) as s:
            s.log(input_uri=[f"/t/{i}" for i in range(10_000)], embedding=rng.normal(size=(10_000, 384)))

        def plain(x):
            return float(x[0])

        decorated = recommend(
            embedding=lambda x: x,
            input_uri=lambda x: "req",
            embedding_set=SET,
            worker_options=WorkerOptions(queue_size=100_000),
        )(plain)
        decorated(xs[0])
        base, wrapped = [], []
        for _ in range(3):  # interleaved rounds
            base += latencies(plain, xs, 1)
            wrapped += latencies(decorated, xs, 1)
        decorated.chroma_flush(60)
        b50, w50 = statistics.median(base), statistics.median(wrapped)
        w99 = float(np.percentile(wrapped, 99))
        print(f"async mode, {len(xs)} x 3 calls, 384-d embedding")
        print(f"  undecorated  p50 {b50 * 1e6:8.1f} us")
        print(
            f"  @recommend   p50 {w50 * 1e6:8.1f} us  p99 {w99 * 1e6:8.1f} us   added p50 {(w50 - b50) * 1e6:.1f} us "
            f"(target < 30 us: {'PASS' if w50 - b50 < 30e-6 else 'MISS'})   stats {decorated.chroma_stats()}"
        )

        sync = recommend(
            embedding=lambda x: x,
            input_uri=lambda x: "req",
            embedding_set=SET,
            mode="sync",
            budget_ms=1000,
            worker_options=WorkerOptions(queue_size=100_000),
        )(plain)
        session = chroma.QuerySession(SET)
        session.log(input_uri="warm", embedding=xs[0])
        sync(xs[0])
        direct = latencies(lambda x: session.log(input_uri="req", embedding=x), xs[:300], 1)
        via = latencies(sync, xs[:300], 1)
        print("\nsync mode against 10,000 training embeddings (embedded engine)")
        print(f"  QuerySession.log()  p50 {statistics.median(direct) * 1e3:6.2f} ms  (baseline)")
        print(
            f"  @recommend sync     p50 {statistics.median(via) * 1e3:6.2f} ms  p99 "
            f"{np.percentile(via, 99) * 1e3:6.2f} ms   added p50 "
            f"{(statistics.median(via) - statistics.median(direct)) * 1e3:.2f} ms"
        )
        sync.chroma_flush(60)
        session.close()
        service_down(xs)
        past_the_budget(xs[0])
        os.chdir("/")


def service_down(xs: np.ndarray) -> None:
    def plain(x):
        return float(x[0])

    options = WorkerOptions(queue_size=100_000, flush_interval=0.05, retry_backoff_max=0.5)
    embedded = recommend(embedding=lambda x: x, input_uri=lambda x: "req", embedding_set=SET, worker_options=options)(
        plain
    )
    dead = recommend(
        embedding=lambda x: x,
        input_uri=lambda x: "req",
        embedding_set=SET,
        worker_options=options,
        chroma_server_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        persist_directory="spill-while-down",
    )(plain)
    calls = np.concatenate([xs, xs, xs, xs[:1000]])  # 10,000
    embedded(xs[0])
    dead(xs[0])
    up = latencies(embedded, calls, 1)
    down = latencies(dead, calls, 1)
    embedded.chroma_flush(60)
    print(f"\nasync mode, {len(calls)} calls each, the service down (spilling) beside the embedded engine")
    for name, lat in (("embedded", up), ("service down", down)):
        print(
            f"  {name:13s} p50 {statistics.median(lat) * 1e6:8.1f} us  p99 {np.percentile(lat, 99) * 1e6:8.1f} us"
            f"  worst {max(lat) * 1e3:6.2f} ms"
        )
    print(f"  worst call with the service down < 50 ms: {verdict(max(down) < 0.05)}   stats {dead.chroma_stats()}")


class _Holding(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(1.0)  # every answer comes a second late
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


def past_the_budget(x: np.ndarray) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Holding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    budget_ms = 100.0
    try:
        sync = recommend(
            embedding=lambda x: x,
            input_uri=lambda x: "req",
            embedding_set=SET,
            mode="sync",
            budget_ms=budget_ms,
            return_results=True,
            chroma_server_url=f"http://127.0.0.1:{server.server_address[1]}",
            persist_directory="spill-past-budget",
            worker_options=WorkerOptions(spill_max_bytes=0),
        )(lambda x: float(x[0]))
        took = latencies(sync, [x] * 10, 1)
    finally:
        server.shutdown()
        server.server_close()
    print(f"\nsync mode past the budget ({budget_ms:.0f} ms; the service answers after 1 s), 10 calls")
    print(
        f"  budget {budget_ms:6.1f} ms (baseline)   returned after p50 {statistics.median(took) * 1e3:6.1f} ms"
        f"  worst {max(took) * 1e3:6.1f} ms   (target < 500 ms: {verdict(max(took) < 0.5)})"
    )


if __name__ == "__main__":
    print(f"chroma {chroma.__version__}, python {sys.version.split()[0]}")
    main()
