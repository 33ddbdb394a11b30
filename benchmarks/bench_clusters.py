"""Which clustering says *where* a set's inputs are (issue 13): k-means against HDBSCAN on real sentence embeddings.

Data: the fortunes of benchmarks/bench_drift.py (nine categories of 600 texts, all-MiniLM-L6-v2, cached under
benchmarks/.cache/). Each method clusters the embeddings; reported: the adjusted Rand index (ARI) and the adjusted
mutual information (AMI) against the true categories, the share of inputs HDBSCAN calls noise (scored as one more
cluster, as a user would see them), the clusters found, and the time (UMAP's reduction time is in its row
name). Baseline in the same run: chroma's own spherical k-means (chroma_core/drift/kmeans.py), what
``chroma.clusters`` uses.

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/bench_clusters.py [--umap]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_drift import embeddings

from chroma_core.drift.kmeans import kmeans
from chroma_core.drift.stats import normalized


def pca(x: np.ndarray, d: int) -> np.ndarray:
    centered = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:d].T  # type: ignore[no-any-return]


def main() -> None:
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    parser = argparse.ArgumentParser()
    parser.add_argument("--fortunes", default="/usr/share/games/fortunes")
    parser.add_argument("--per", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--umap", action="store_true", help="also UMAP to 5-d, then HDBSCAN (the [umap] extra)")
    args = parser.parse_args()
    if not (Path(args.fortunes) / "computers").exists():
        print(f"skipped: no fortunes in {args.fortunes} (apt-get install fortunes)")
        return
    emb, _, labels = embeddings(Path(args.fortunes), args.per)
    truth = np.unique(np.array(labels), return_inverse=True)[1]
    x = normalized(emb)
    rows = []

    def report(name: str, fit, repeat: int = 1) -> None:
        scores, seconds, found, noise = [], [], [], []
        for seed in range(repeat):
            t0 = time.perf_counter()
            got = fit(seed)
            seconds.append(time.perf_counter() - t0)
            scores.append((adjusted_rand_score(truth, got), adjusted_mutual_info_score(truth, got)))
            found.append(len(set(got.tolist()) - {-1}))
            noise.append(float(np.mean(got == -1)))
        ari, ami = np.mean(scores, axis=0)
        rows.append((name, ari, ami, np.mean(found), np.mean(noise), np.median(seconds)))

    for k in (9, 20):
        report(f"k-means k={k} (384-d, chroma's)", lambda s, k=k: kmeans(x, k, rng=np.random.default_rng(s))[1],
               args.seeds)  # fmt: skip
    for d, size, samples in ((384, 15, None), (50, 15, None), (10, 15, None), (10, 40, None), (10, 15, 1)):
        z = x if d == 384 else pca(x, d)
        report(
            f"HDBSCAN min_cluster_size={size}{f' min_samples={samples}' if samples else ''} "
            f"({d}-d{', PCA' if d < 384 else ''})",
            lambda s, z=z, size=size, samples=samples: HDBSCAN(min_cluster_size=size, min_samples=samples).fit_predict(
                z
            ),
        )
    if args.umap:
        import umap

        t0 = time.perf_counter()
        z5 = umap.UMAP(n_components=5, n_neighbors=15, min_dist=0.0, random_state=0).fit_transform(x)
        reduce_s = time.perf_counter() - t0
        for size in (15, 40):
            report(
                f"UMAP 5-d ({reduce_s:.0f} s) + HDBSCAN min_cluster_size={size}",
                lambda s, size=size: HDBSCAN(min_cluster_size=size).fit_predict(z5),
            )
    z10 = pca(x, 10)
    for k in (9, 20):
        report(f"k-means k={k} (10-d PCA)", lambda s, k=k: kmeans(normalized(z10), k, rng=np.random.default_rng(s))[1],
               args.seeds)  # fmt: skip
    print(f"{len(x)} fortunes in {truth.max() + 1} categories, MiniLM 384-d")
    print("| method | ARI | AMI | clusters | noise | time |\n|---|---|---|---|---|---|")
    for name, ari, ami, found, noise, seconds in rows:
        print(f"| {name} | {ari:.3f} | {ami:.3f} | {found:.0f} | {noise:.0%} | {seconds:.2f} s |")


if __name__ == "__main__":
    main()
