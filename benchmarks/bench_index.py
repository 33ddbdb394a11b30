"""Approximate index libraries compared on this machine (issue 3): faiss-cpu (HNSW), usearch, hnswlib, beside exact
numpy search on the same data in the same run.

    python benchmarks/bench_index.py [--n 100000] [--dim 384] [--ef 64,128] [--rerank]
        [--only exact,usearch-f16,usearch-bf16] [--connectivity 16,32] [--expansion-add 128]

``--only usearch-f16:16,usearch-bf16:24``: an index's connectivity (M) after a colon, instead of ``--connectivity``.

``--rerank``: each usearch search also as the engine does it (``chroma_core.engine.search``): ``max(2k, k+10)``
candidates from the index, re-ranked with the exact float32 vectors, the re-rank's cost included in the latency.

Data: clustered Gaussian vectors (500 clusters), L2-normalised; queries drawn the same way. Recall@10 is measured
against exact search. Memory is the growth of this process's resident set while building.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def data(n: int, dim: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(500, dim)).astype(np.float32)
    x = centers[rng.integers(500, size=n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    qs = centers[rng.integers(500, size=q)] + 0.6 * rng.normal(size=(q, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    return x.astype(np.float32), qs.astype(np.float32)


def exact_topk(x: np.ndarray, qs: np.ndarray, k: int) -> np.ndarray:
    out = []
    for i in range(0, len(qs), 256):
        sims = qs[i : i + 256] @ x.T
        out.append(np.argsort(-sims, axis=1)[:, :k])
    return np.concatenate(out)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def measure(name: str, build, search_one, search_many, qs: np.ndarray, truth: np.ndarray, k: int) -> None:
    gc.collect()
    before = rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    index = build()
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    mem = rss_mb() - before
    lat = []
    found = []
    for q in qs:
        t0 = time.perf_counter()
        found.append(search_one(index, q, k))
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    search_many(index, qs, k)
    batched = len(qs) / (time.perf_counter() - t0)
    single = len(qs) / sum(lat)
    p50, p99 = np.percentile(lat, [50, 99]) * 1e3
    print(
        f"  {name:22} build {build_s:7.2f} s ({build_cpu:7.1f} s CPU)  +{mem:6.0f} MB  "
        f"recall@{k} {recall(np.array(found), truth):.3f}  "
        f"p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  batched {batched:8.0f} q/s ({batched / single:4.1f}x one-by-one)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--only", default="exact,usearch,usearch-f16,usearch-i8,faiss,hnswlib", help="also: usearch-bf16"
    )
    parser.add_argument("--connectivity", default="16", help="comma-separated usearch connectivity (M) values to build")
    parser.add_argument("--expansion-add", type=int, default=128, help="usearch's expansion_add (ef at build)")
    parser.add_argument(
        "--ef",
        default="",
        help="comma-separated usearch expansion_search values to try after "
        "building (e.g. 64,128,256); default: 64 only",
    )
    parser.add_argument("--rerank", action="store_true", help="also usearch's candidates re-ranked exactly")
    args = parser.parse_args()
    k = 10
    x, qs = data(args.n, args.dim, args.queries)
    truth = exact_topk(x, qs, k)
    only = {entry.partition(":")[0] for entry in args.only.split(",")}
    own_m: dict[str, list[int]] = {}
    for entry in args.only.split(","):
        name, _, m = entry.partition(":")
        if m:
            own_m.setdefault(name, []).append(int(m))
    print(f"{args.n:,} x {args.dim}-d, {args.queries} queries, k={k}")

    if "exact" in only:
        measure(
            "exact numpy (baseline)",
            lambda: x,
            lambda ix, q, k: np.argpartition(-(ix @ q), k)[:k],
            lambda ix, qs, k: np.argpartition(-(qs @ ix.T), k, axis=1)[:, :k],
            qs[:200],
            truth[:200],
            k,
        )
    import importlib.util

    for lib in ("usearch", "faiss", "hnswlib"):
        if importlib.util.find_spec(lib) is None:
            print(f"  {lib:22} skipped: not installed (pip install {'faiss-cpu' if lib == 'faiss' else lib})")
            only -= {lib, f"{lib}-f16", f"{lib}-bf16", f"{lib}-i8"}
    connectivities = [int(c) for c in args.connectivity.split(",")]
    for dtype, connectivity in (
        (d, c)
        for d in ("f32", "bf16", "f16", "i8")
        for c in own_m.get("usearch" if d == "f32" else f"usearch-{d}", connectivities)
    ):
        name = "usearch" if dtype == "f32" else f"usearch-{dtype}"
        if name not in only:
            continue
        from usearch.index import Index

        if args.connectivity != "16" or own_m or args.expansion_add != 128:
            name += f" M{connectivity}" + (f" add{args.expansion_add}" if args.expansion_add != 128 else "")

        def build(dtype=dtype, connectivity=connectivity):
            ix = Index(
                ndim=args.dim,
                metric="cos",
                dtype=dtype,
                connectivity=connectivity,
                expansion_add=args.expansion_add,
                expansion_search=64,
            )
            ix.add(np.arange(len(x)), x, threads=0)
            return ix

        efs = [int(e) for e in args.ef.split(",") if e] or [64]
        wanted = max(2 * k, k + 10)

        def reranked_one(ix, q, k, wanted=wanted):
            rows = np.asarray(ix.search(q, wanted).keys, dtype=np.int64)
            return rows[np.argsort(-(x[rows] @ q), kind="stable")[:k]]

        def reranked_many(ix, qs, k, wanted=wanted):
            rows = np.asarray(ix.search(qs, wanted, threads=0).keys, dtype=np.int64).reshape(len(qs), -1)
            sims = np.einsum("qd,qkd->qk", qs, x[rows])
            return np.take_along_axis(rows, np.argsort(-sims, axis=1, kind="stable")[:, :k], axis=1)

        built: dict[str, object] = {}
        for j, ef in enumerate(efs):

            def with_ef(ef=ef, first=(j == 0), build=build, built=built):
                if first:
                    built["ix"] = build()
                ix = built["ix"]
                ix.expansion_search = ef
                return ix

            measure(
                f"{name} ef={ef}" if args.ef else name,
                with_ef,
                lambda ix, q, k: ix.search(q, k).keys,
                lambda ix, qs, k: ix.search(qs, k, threads=0).keys,
                qs,
                truth,
                k,
            )
            if args.rerank:
                measure(
                    f"  +re-rank {wanted}",
                    lambda built=built: built["ix"],
                    reranked_one,
                    reranked_many,
                    qs,
                    truth,
                    k,
                )

    if "faiss" in only:
        import faiss

        def fbuild():
            ix = faiss.IndexHNSWFlat(args.dim, 16, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efConstruction = 128
            ix.add(x)
            ix.hnsw.efSearch = 64
            return ix

        measure(
            "faiss HNSWFlat",
            fbuild,
            lambda ix, q, k: ix.search(q[None, :], k)[1][0],
            lambda ix, qs, k: ix.search(qs, k)[1],
            qs,
            truth,
            k,
        )
    if "hnswlib" in only:
        import hnswlib

        def hbuild():
            ix = hnswlib.Index(space="ip", dim=args.dim)
            ix.init_index(max_elements=len(x), ef_construction=128, M=16)
            ix.add_items(x, np.arange(len(x)))
            ix.set_ef(64)
            return ix

        measure(
            "hnswlib",
            hbuild,
            lambda ix, q, k: ix.knn_query(q, k)[0][0],
            lambda ix, qs, k: ix.knn_query(qs, k)[0],
            qs,
            truth,
            k,
        )


if __name__ == "__main__":
    main()
