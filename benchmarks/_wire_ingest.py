"""Section 3 of bench_wire.py: HTTP ingest in both upload forms beside the embedded engine (issue 16: 0.5x, 0.8x).

The embedded engine is measured in a child process of its own (``python _wire_ingest.py embedded ...``), so that
its background work after an ingest (index and calibration upkeep, on threads of the process that ingested) can
never run on into the HTTP measurement that follows it, as it did when it shared the benchmark's process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _util import cpu_seconds, idle, verdict

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Records
from chroma_core.transport import LocalTransport, Transport
from chroma_core.transport.http import HTTPTransport

DIM = 384
#: 19,000 records of 384-d per measurement: under the store's ANN threshold (20,000), so that no index build
#: (seconds of CPU, in the background) starts inside one measurement and runs on into the next.
PER, BATCHES = 500, 38

Work = list[list[tuple[BatchHeader, Records]]]


def ingest_batches(clients: int, n: int, per: int, tag: str) -> Work:
    """``n`` batches of ``per`` 384-d records for a set of their own, split among ``clients``, made beforehand."""
    es = EmbeddingSet.from_dict({"model": "bench", "layer": "ingest", "tag": tag})
    rng = np.random.default_rng(7)
    work: Work = [[] for _ in range(clients)]
    for b in range(n):
        bid = f"{tag}-{b}"
        x = rng.normal(size=(per, DIM)).astype(np.float32)
        uris = [f"/{bid}/{i}" for i in range(per)]
        records = Records(
            x, [f"{bid}:{i}" for i in range(per)], uris, [{"label": "a", "score": 0.9}] * per, [None] * per, [0.0] * per
        )
        work[b % clients].append((BatchHeader(bid, es, "training", DIM, "t"), records))
    return work


def ingest_rate(make: Callable[[], Transport], work: Work) -> float:
    """Records per second, one thread (with its own transport) per list of batches."""

    def run(items: list[tuple[BatchHeader, Records]], transport: Transport) -> None:
        for header, records in items:
            transport.upload(header, records)

    threads = [threading.Thread(target=run, args=(w, make())) for w in work]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(len(r) for w in work for _, r in w) / (time.perf_counter() - t0)


def embedded_child(root: str, clients: int, tag: str) -> None:
    """In the child: warm an engine over ``root``, wait for its background work, then measure; JSON on stdout."""
    local = LocalTransport(Path(root))
    ingest_rate(lambda: local, ingest_batches(1, 4, PER, f"warm-{tag}"))
    work = ingest_batches(clients, BATCHES, PER, tag)
    for info in local.list_sets():
        local.engine.store.wait_for_index(info.id, 900)  # type: ignore[attr-defined]
    idle(os.getpid())
    cpu = time.process_time()
    rate = ingest_rate(lambda: local, work)
    per_1k = (time.process_time() - cpu) / (BATCHES * PER) * 1e6
    print(json.dumps({"rate": rate, "cpu_ms_per_1k": per_1k}), flush=True)


def embedded(root: Path, clients: int, tag: str) -> tuple[float, float]:
    """(records/s, CPU ms per 1,000 records) of the embedded engine, measured in a child process."""
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "embedded", str(root), str(clients), tag],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["rate"]), float(result["cpu_ms_per_1k"])


#: The engine loads and calibrates a set of 10,000 training rows or more this long after its last write
#: (``Engine(warm_delay=...)``): seconds of CPU that must not fall into the next measurement.
WARM_DELAY_S = 1.0


def settle(*pids: int) -> None:
    """Until the previous measurement's background work is done: past the warm-up delay, then idle."""
    # idle() alone could return inside the delay, before that work had even started (seen: a measurement
    # whose server threads used 2x the CPU of the one before, from the previous set's calibration).
    time.sleep(WARM_DELAY_S + 0.5)
    idle(*pids)


def section_ingest(root: Path, url: str, server: int, rounds: int = 1) -> None:
    """HTTP ingest in both upload forms against the embedded engine, interleaved, ``rounds`` times (medians); each
    measurement into a set of its own, once the service (and this process) are idle after the previous one."""

    def http(binary: bool) -> Callable[[], Transport]:
        def make() -> Transport:
            transport = HTTPTransport(load_config(chroma_url=url, environ={}))
            transport._binary_uploads = binary
            return transport

        return make

    forms = {"binary": http(True), "JSONL": http(False)}
    # The service's first uploads pay for what it sets up once (measured: 31 ms of CPU per 1,000 records in the
    # first batches, 12 after): warm it in both forms first.
    for form, make in forms.items():
        ingest_rate(make, ingest_batches(1, 4, PER, f"warm-{form}"))
    print(
        f"3. ingest of {BATCHES * PER:,} x {DIM}-d records in batches of {PER} (records/s; higher is better; "
        f"medians of {rounds} interleaved rounds)"
    )
    n = BATCHES * PER
    for clients, target in ((1, 0.5), (4, 0.8)):
        rates: dict[str, list[float]] = {"embedded": [], "binary": [], "JSONL": []}
        cpu: dict[str, list[tuple[float, float]]] = {"embedded": [], "binary": [], "JSONL": []}
        for r in range(rounds):
            rate, embedded_cpu = embedded(root / "embedded", clients, f"embedded{clients}-{r}")
            rates["embedded"].append(rate)
            cpu["embedded"].append((embedded_cpu, 0.0))
            for form, make in forms.items():
                work = ingest_batches(clients, BATCHES, PER, f"{form}{clients}-{r}")
                settle(server, os.getpid())
                before, client = cpu_seconds(server), time.process_time()
                rates[form].append(ingest_rate(make, work))
                cpu[form].append(((time.process_time() - client) / n * 1e6, (cpu_seconds(server) - before) / n * 1e6))
        rate = {form: statistics.median(v) for form, v in rates.items()}
        ms = {form: [statistics.median(c[i] for c in v) for i in (0, 1)] for form, v in cpu.items()}
        base = rate["embedded"]
        ratio = rate["binary"] / base
        each = ", ".join(f"{b / e:.2f}" for b, e in zip(rates["binary"], rates["embedded"], strict=True))
        print(
            f"  {clients} client(s): embedded {base:7.0f}/s (its own process)   HTTP binary {rate['binary']:7.0f}/s "
            f"({ratio:.2f}x, target >= {target}x: {verdict(ratio >= target)}; each round {each})   "
            f"HTTP JSONL {rate['JSONL']:7.0f}/s ({rate['JSONL'] / base:.2f}x)"
        )
        print(
            f"      CPU ms per 1,000 records, client + server: embedded {ms['embedded'][0]:.1f}   "
            f"binary {ms['binary'][0]:.1f} + {ms['binary'][1]:.1f}   JSONL {ms['JSONL'][0]:.1f} + {ms['JSONL'][1]:.1f}"
        )


if __name__ == "__main__" and sys.argv[1:2] == ["embedded"]:
    embedded_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
