"""@recommend overhead (issue 7): decorated vs undecorated predict in the same run.

    python benchmarks/bench_serving.py

Async mode: the added cost per call (target: p50 under 30 µs added). Sync mode: beside a direct
QuerySession.log() of the same embedding, on the embedded engine.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import numpy as np

import chroma
from chroma_core.worker import WorkerOptions
from chroma_integrations.serving import recommend

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
        os.chdir("/")


if __name__ == "__main__":
    print(f"chroma {chroma.__version__}, python {sys.version.split()[0]}")
    main()
