"""Triage benchmarks (issue 3): what storing production inputs costs the caller, `select`, and `export`.

    python benchmarks/bench_triage.py [--production 50000]     # or: nox -s bench

Each figure is printed beside a baseline measured in the same run:
- QuerySession.log() with storing on (the default) against the same session with store=False;
- select(n=100) against taking the top 100 by priority (no spreading): time, and how many distinct failure
  regions the 100 picks cover;
- export to Parquet / JSONL against numpy.save of the same vectors.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import best_of, verdict

import chroma
from chroma_core.engine.engine import open_engine
from chroma_core.engine.selection import priorities

DIM = 384


def data(n_train: int, n_prod: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training from 50 clusters; production: 60% like training, 40% from 400 new regions of skewed sizes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(50, DIM))
    train = (centers[rng.integers(50, size=n_train)] + 0.5 * rng.normal(size=(n_train, DIM))).astype(np.float32)
    n_new = int(0.4 * n_prod)
    new_centers = rng.normal(size=(400, DIM)) * 1.5
    # Zipf-like: a few failures are very common, most are rare; the common ones must not take all the picks.
    weights = 1.0 / np.arange(1, 401) ** 1.2
    region = rng.choice(400, size=n_new, p=weights / weights.sum())
    novel = new_centers[region] + 0.15 * rng.normal(size=(n_new, DIM))
    known = centers[rng.integers(50, size=n_prod - n_new)] + 0.5 * rng.normal(size=(n_prod - n_new, DIM))
    prod = np.concatenate([known, novel]).astype(np.float32)
    truth = np.concatenate([np.full(n_prod - n_new, -1), region])
    order = rng.permutation(n_prod)
    return train, prod[order], truth[order]


def bench_store_overhead(directory: str, train: np.ndarray, queries: np.ndarray) -> None:
    es = {"model": "bench", "layer": "store-overhead"}
    with chroma.TrainingSession(es, persist_directory=directory) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(train))], embedding=train)
    timings = {}
    for store in (False, True, False, True):  # interleaved, so drift on a shared machine hits both alike
        with chroma.QuerySession(es, persist_directory=directory, store=store) as q:
            q.log(input_uri="warm", embedding=queries[0])
            lat = []
            for i, v in enumerate(queries):
                t0 = time.perf_counter()
                q.log(input_uri=f"/q/{i}", embedding=v)
                lat.append(time.perf_counter() - t0)
        timings.setdefault(store, []).extend(lat)
    off50, off99 = np.percentile(timings[False], [50, 99]) * 1e3
    on50, on99 = np.percentile(timings[True], [50, 99]) * 1e3
    extra = on50 / off50 - 1
    print(
        f"QuerySession.log(), {len(train):,} training x {DIM}-d, one query per call:\n"
        f"  storing on  p50 {on50:.3f} ms  p99 {on99:.3f} ms\n"
        f"  storing off p50 {off50:.3f} ms  p99 {off99:.3f} ms (baseline)\n"
        f"  overhead of storing: {extra:+.1%} at p50   target <= +10%: {verdict(extra <= 0.10)}"
    )


def bench_select(directory: str, train: np.ndarray, prod: np.ndarray, truth: np.ndarray, n: int = 100) -> None:
    es = {"model": "bench", "layer": "select"}
    with chroma.TrainingSession(es, persist_directory=directory) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(train))], embedding=train)
    t0 = time.perf_counter()
    with chroma.QuerySession(es, persist_directory=directory) as q:
        for start in range(0, len(prod), 1000):
            stop = min(start + 1000, len(prod))
            q.log(input_uri=[f"/p/{i}" for i in range(start, stop)], embedding=prod[start:stop])
        stored_in_time = q.flush(timeout=600)
    logged = time.perf_counter() - t0
    print(
        f"\nselect(n={n}) over {len(prod):,} stored production inputs ({len(train):,} training, {DIM}-d; "
        f"logged and stored in {logged:.1f} s, complete: {stored_in_time})"
    )
    selection = None

    def run_select() -> None:
        nonlocal selection
        selection = chroma.select(es, n=n, persist_directory=directory)

    t_select = best_of(run_select, 3)
    assert selection is not None

    engine = open_engine(directory)
    set_id = chroma.embedding_set_id(es)

    def top_by_priority() -> list[int]:
        answers = engine.store.answers(set_id)
        recommended = answers.take(answers.training_recommended)
        order = np.argsort(-priorities(recommended), kind="stable")[:n]
        return [int(r) for r in recommended.rows[order]]

    top: list[int] = []

    def run_top() -> None:
        nonlocal top
        top = top_by_priority()

    t_top = best_of(run_top, 3)
    picked_rows = [int(p.input_uri.rsplit("/", 1)[1]) for p in selection.picks]
    regions_select = len({int(truth[r]) for r in picked_rows if truth[r] >= 0})
    regions_top = len({int(truth[r]) for r in top if truth[r] >= 0})
    known_select = sum(truth[r] < 0 for r in picked_rows)
    known_top = sum(truth[r] < 0 for r in top)
    print(
        f"  select:          {t_select:6.2f} s   {len(selection.picks)} picks cover {regions_select:3d} of 400 new "
        f"regions, {known_select} picks from known data; {selection.near_duplicates_dropped:,} near duplicates "
        f"dropped; {selection.recommended:,} recommended\n"
        f"  top-by-priority: {t_top:6.2f} s   {len(top)} picks cover {regions_top:3d} of 400 new regions, "
        f"{known_top} picks from known data (baseline)\n"
        f"  spreading covers {regions_select / max(regions_top, 1):.1f}x the regions   target: more regions than "
        f"the baseline {verdict(regions_select > regions_top)}; select under 10 s {verdict(t_select < 10)}"
    )
    bench_export(directory, set_id, len(prod) + len(train))


def bench_export(directory: str, set_id: str, rows: int) -> None:
    engine = open_engine(directory)
    vectors = np.concatenate([engine.store.vectors(set_id, "training"), engine.store.vectors(set_id, "production")])
    out = Path(directory) / "exports"
    out.mkdir(exist_ok=True)
    base = best_of(lambda: np.save(out / "v.npy", vectors), 3)
    print(f"\nexport of {rows:,} records ({DIM}-d, with their answers):")
    print(f"  numpy.save of the vectors alone: {base:6.2f} s  (baseline)")
    for name in ("set.parquet", "set.jsonl"):
        t = best_of(lambda n=name: chroma.export(set_id, out / n, overwrite=True, persist_directory=directory), 1)
        size = (out / name).stat().st_size / 2**20
        print(f"  {name:13}                    {t:6.2f} s  {size:7.1f} MiB  {rows / t:9,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--training", type=int, default=10_000)
    parser.add_argument("--production", type=int, default=50_000)
    args = parser.parse_args()
    print(f"chroma {chroma.__version__}, numpy {np.__version__}, {os.cpu_count()} cpus\n")
    train, prod, truth = data(args.training, args.production)
    with tempfile.TemporaryDirectory() as d:
        bench_store_overhead(d, train, prod[:500])
        bench_select(d, train, prod, truth)


if __name__ == "__main__":
    main()
