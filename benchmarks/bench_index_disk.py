"""The usearch index on disk with and without its vector copy (issue 18, item 10), in one run.

    python benchmarks/bench_index_disk.py [--n 100000] [--dim 384] [--queries 200]

One float16 index (``chroma_core.engine.ann.ANNIndex``, built on every core as the store builds it) over ``n``
clustered unit vectors, saved two ways: whole, as usearch writes it (the layout before this change, still used for
int8), and without its vectors, which are put back from the store's float32 rows on open (the layout now used for
float16 and float32). Printed for each: file size, save and open time (median of 3), recall@10 against exact numpy
search and query p50/p99 on the opened index; the float32 vector file the store keeps anyway is printed beside
them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of
from bench_index import data

from chroma_core.engine import ann
from chroma_core.engine.index import normalize

K = 10


def truth(x: np.ndarray, qs: np.ndarray) -> np.ndarray:
    sims = qs @ x.T
    return np.argsort(-sims, axis=1)[:, :K]


def measure(index: ann.ANNIndex, qs: np.ndarray, exact: np.ndarray) -> tuple[float, float, float]:
    times, hits = [], 0
    for q, t in zip(qs, exact, strict=True):
        t0 = time.perf_counter()
        _, keys = index.search(q[None, :], K)
        times.append(time.perf_counter() - t0)
        hits += len(set(keys[0].tolist()) & set(t.tolist()))
    return hits / (K * len(qs)), float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    raw, qs = data(args.n, args.dim, args.queries)  # unit vectors around 500 centres
    x = normalize(raw)
    exact = truth(x, qs)
    t0 = time.perf_counter()
    index = ann.ANNIndex(args.dim, "f16", threads=os.cpu_count() or 1)
    index.add(x)
    print(f"{args.n} x {args.dim}, f16 index built in {time.perf_counter() - t0:.1f} s on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        raw.tofile(folder / "training.f32")  # what the store keeps anyway: the exact vectors
        new, old = folder / "training.usearch", folder / "whole.usearch"
        save_new = best_of(lambda: index.save(new, {"set_created": 1.0}), repeats=3)

        def save_whole() -> None:
            # The layout before: usearch's whole file, its checksum in the sidecar.
            index._index.save(str(old))
            meta = {"count": len(index), "dtype": "f16", "dimension": args.dim, "sha256": ann._sha256(old)}
            old.with_suffix(".json").write_text(json.dumps(meta))

        save_old = best_of(save_whole, repeats=3)
        rows = lambda first: x[first:]  # noqa: E731 - what the store's loader passes: its normalised rows
        print(f"  {'layout':34} {'file MB':>8} {'save s':>7} {'open s':>7} {'recall':>7} {'p50 ms':>7} {'p99 ms':>7}")
        for name, path, save_s in (
            ("whole (before; int8 still)", old, save_old),
            ("without vectors (f16, f32)", new, save_new),
        ):
            open_s = best_of(
                lambda p=path: ann.ANNIndex.open(p, args.dim, "f16", len(x), rows, rows_at=x.__getitem__), repeats=3
            )
            opened = ann.ANNIndex.open(path, args.dim, "f16", len(x), rows, rows_at=x.__getitem__)
            recall, p50, p99 = measure(opened, qs, exact)
            print(
                f"  {name:34} {path.stat().st_size / 1e6:8.1f} {save_s:7.2f} {open_s:7.2f} "
                f"{recall:7.3f} {p50:7.2f} {p99:7.2f}"
            )
        print(f"  {'training.f32 (kept by the store)':34} {(folder / 'training.f32').stat().st_size / 1e6:8.1f}")


if __name__ == "__main__":
    main()
