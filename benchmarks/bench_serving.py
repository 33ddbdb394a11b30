"""@recommend overhead (issue 7): decorated vs undecorated predict in the same run.

    python benchmarks/bench_serving.py
    python benchmarks/bench_serving.py --sustained 60     # 1,000 predictions/s for 60 s (issue 16)

Async mode: the added cost per call (target: p50 under 30 µs added). Sync mode: beside a direct
QuerySession.log() of the same embedding, on the embedded engine.

What the tests no longer time (they check what runs on the caller's thread instead), measured here:

- async mode while the service is down (nothing listens on its port; the worker spills): the worst call of
  10,000, beside the same calls on the embedded engine (target: worst under 50 ms);
- sync mode past its budget (a service on 127.0.0.1 that holds every answer for a second): how long a prediction
  takes to come back, beside the budget (target: under 0.5 s with a 100 ms budget).

``--sustained S``: async mode paced at ``--rate`` (default 1,000) predictions a second for S seconds, each
decorated call beside an undecorated one in the same slot, with the CPU the background worker thread used
(target: p50 added under 30 µs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


def plain(x):
    return float(x[0])


def trained_and_decorated(rng: np.random.Generator, x: np.ndarray):
    """10,000 training embeddings in the embedded engine under the cwd, and ``plain`` under async @recommend."""
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(10_000)], embedding=rng.normal(size=(10_000, 384)))
    decorated = recommend(
        embedding=lambda x: x,
        input_uri=lambda x: "req",
        embedding_set=SET,
        worker_options=WorkerOptions(queue_size=100_000),
    )(plain)
    decorated(x)
    return decorated


def main() -> None:
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(3000, 384)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        decorated = trained_and_decorated(rng, xs[0])
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


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process (Linux /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sustained(seconds: float, rate: float) -> None:
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(1000, 384)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        decorated = trained_and_decorated(rng, xs[0])
        decorated.chroma_flush(60)
        names = sorted(t.name for t in threading.enumerate())
        worker = next((t for t in threading.enumerate() if t.name == "chroma-worker"), None)
        assert worker is not None and worker.native_id, f"no chroma-worker thread among {names}"
        base, wrapped = [], []
        cpu0, process0, wall0 = thread_cpu_seconds(worker.native_id), time.process_time(), time.perf_counter()
        n = int(seconds * rate)
        late = 0
        for i in range(n):
            due = wall0 + i / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            elif now - due > 0.01:
                late += 1
            x = xs[i % len(xs)]
            t0 = time.perf_counter()
            plain(x)
            t1 = time.perf_counter()
            decorated(x)
            t2 = time.perf_counter()
            base.append(t1 - t0)
            wrapped.append(t2 - t1)
        wall = time.perf_counter() - wall0
        worker_cpu = thread_cpu_seconds(worker.native_id) - cpu0
        process_cpu = time.process_time() - process0
        flushed = decorated.chroma_flush(120)
        os.chdir("/")
    b50, w50, w99 = statistics.median(base), statistics.median(wrapped), float(np.percentile(wrapped, 99))
    print(f"async mode sustained: {n:,} predictions in {wall:.1f} s ({n / wall:,.0f}/s; {late} started >10 ms late)")
    print(f"  undecorated  p50 {b50 * 1e6:8.1f} us  (baseline, the same slots)")
    print(
        f"  @recommend   p50 {w50 * 1e6:8.1f} us  p99 {w99 * 1e6:8.1f} us   added p50 {(w50 - b50) * 1e6:.1f} us "
        f"(target < 30 us: {verdict(w50 - b50 < 30e-6)})"
    )
    print(
        f"  worker thread ({worker.name}) CPU {worker_cpu:.1f} s = {worker_cpu / wall * 100:.0f}% of one core; "
        f"whole process {process_cpu / wall * 100:.0f}%; all stored by the end: {flushed}"
    )
    print(f"  stats {decorated.chroma_stats()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="@recommend overhead")
    parser.add_argument("--sustained", type=float, metavar="SECONDS", help="only the sustained async run")
    parser.add_argument("--rate", type=float, default=1000.0, help="predictions a second in --sustained")
    args = parser.parse_args()
    print(f"chroma {chroma.__version__}, python {sys.version.split()[0]}")
    if args.sustained:
        sustained(args.sustained, args.rate)
    else:
        main()
