"""The first query after a large upload, and one query's cost through the store's row maps (issue 18, item 4).

    python benchmarks/bench_first_query.py [--n 100000] [--dim 384] [--rows-n 30000]

1. First query: ``n`` training vectors (with labels and class scores) stored through an embedded engine, in 8
   parts as an upload sends them, into two stores: one whose engine loads the set's model and calibrates it in
   the background after the last part (``warm``, the default; the bench waits for it, as a user's first query
   a few seconds later would find it), one that does neither (``warm_rows=None``: what every version before did,
   the baseline). Printed: the first query's time on each. No approximate index (``ann_threshold=None``), so the
   figures are the model load and the calibration alone, not a build competing for the cores (``--index``: with
   the store's usearch index building on the other threads meanwhile, as a service does after an upload).
2. One query of a ``rows-n`` x ``dim`` set once its usearch index covers it (candidates re-ranked with exact vectors
   read through ``vectors_at``): p50 of 200 single queries with the store's memory maps kept open, and with one
   map opened per call (the baseline, the code before), alternating rounds in this run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_index import data

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore
from chroma_core.engine import sqlite_files as files
from chroma_core.engine.engine import Engine
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest

ES = EmbeddingSet.from_dict({"model": "bench", "layer": "first-query"})


def upload(engine: Engine, x: np.ndarray, parts: int = 8) -> None:
    n = len(x)
    labels = [f"c{i % 20}" for i in range(n)]
    for p, start in enumerate(range(0, n, -(-n // parts))):
        stop = min(n, start + -(-n // parts))
        inferences = [
            [{"label": labels[i], "score": 0.7}, {"label": f"c{(i + 1) % 20}", "score": 0.2}]
            for i in range(start, stop)
        ]
        records = Records(
            x[start:stop],
            [f"r{i}" for i in range(start, stop)],
            [f"/in/{i}" for i in range(start, stop)],
            inferences,
            labels[start:stop],
            [0.0] * (stop - start),
        )
        engine.put(BatchHeader(f"part-{p}", ES, "training", x.shape[1], "t"), records)


def first_query(root: Path, x: np.ndarray, q: np.ndarray, warm: bool, index: bool) -> tuple[float, float, float]:
    """(upload s, s until the background model is ready, first query s)."""
    store = SQLiteStore(root, ann_threshold=20_000 if index else None)
    try:
        engine = Engine(store, warm_rows=10_000 if warm else None)
    except TypeError:  # a tree from before the warm-up (run with PYTHONPATH=<that tree> for its figures)
        if warm:
            return float("nan"), float("nan"), float("nan")
        engine = Engine(store)
    t0 = time.perf_counter()
    upload(engine, x)
    uploaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    if hasattr(engine, "wait_for_model"):
        engine.wait_for_model(ES.id, 600)
    ready = time.perf_counter() - t1
    t2 = time.perf_counter()
    engine.query(QueryRequest.of(ES, q[:1], ["q"]))
    first = time.perf_counter() - t2
    if index:  # a build left running would take the cores from the next run
        store.wait_for_index(ES.id, 900)
    engine.close()
    return uploaded, ready, first


def row_maps(root: Path, x: np.ndarray, q: np.ndarray, rounds: int = 4, per: int = 50) -> tuple[float, float]:
    """p50 ms of one query with the maps kept open, and with a map per call (``files.read_rows``)."""
    store = SQLiteStore(root)
    engine = Engine(store, warm_rows=None)
    upload(engine, x)
    assert store.wait_for_index(ES.id, 900)
    time.sleep(1.1)  # the engine asks the store for its index again after a second
    engine.query(QueryRequest.of(ES, q[:1], ["q"]))  # model and calibration: not timed
    assert engine._models[ES.id].search.start == len(x)
    kept = store.vectors_at

    def per_call(set_id, mode, rows):  # the code before: a memory map opened and closed on every call
        index = np.asarray(rows, dtype=np.int64).reshape(-1)
        return store._read(set_id, mode, lambda path, dim, count: files.read_rows(path, dim, count, index))

    times: dict[str, list[float]] = {"kept": [], "per call": []}
    for r in range(rounds):
        for name, fn in (
            (("kept", kept), ("per call", per_call)) if r % 2 == 0 else (("per call", per_call), ("kept", kept))
        ):
            store.vectors_at = fn  # type: ignore[method-assign]
            for i in range(per):
                t = time.perf_counter()
                engine.query(QueryRequest.of(ES, q[i : i + 1], ["q"]))
                times[name].append(time.perf_counter() - t)
    engine.close()
    return float(np.median(times["kept"]) * 1e3), float(np.median(times["per call"]) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--rows-n", type=int, default=30_000)
    parser.add_argument("--skip", default="", help="first,rows: parts not to run")
    parser.add_argument("--index", action="store_true", help="part 1 with the usearch index building meanwhile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if "first" not in args.skip:
            x, q = data(args.n, args.dim, 10)
            how = "its ANN index building meanwhile" if args.index else "no ANN index"
            print(f"first query after a {args.n:,} x {args.dim} upload in 8 parts (embedded, {how}):")
            for name, warm in (("before (no warm-up)", False), ("after (warm-up)", True)):
                up, ready, first = first_query(Path(tmp) / name.split()[0], x, q, warm, args.index)
                print(f"  {name:20s} upload {up:6.1f} s  warm-up after it {ready:6.1f} s  first query {first:7.2f} s")
        if "rows" not in args.skip:
            x, q = data(args.rows_n, args.dim, 200, seed=1)
            kept, per_call = row_maps(Path(tmp) / "rows", x, q)
            print(f"one query, {args.rows_n:,} x {args.dim}, index covering every row (p50 of 100 each):")
            print(f"  maps kept open {kept:7.2f} ms   map per call (before) {per_call:7.2f} ms")


if __name__ == "__main__":
    main()
