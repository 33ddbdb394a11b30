"""Recommendation quality on real data that no one here made (issues 3 and 15).

Two labelled corpora from Debian packages (benchmarks/_quality_data.py): ``fortunes`` (witty one-liners by topic)
and ``wordnet`` (dictionary glosses by lexicographer file), embedded with all-MiniLM-L6-v2 (cached under
benchmarks/.cache). Each category in turn is held out as out-of-distribution: training is 70% of the other
categories (their category as the label), in-distribution test is their other 30%, OOD is the held-out category.

    python benchmarks/bench_quality.py [--markdown docs/recommendations-benchmark.md]

For every detector (benchmarks/_quality_methods.py, and the engine's own scores through a real embedded engine):
AUROC, FPR at 95% TPR, and TPR / FPR at the threshold calibrated from the training data alone (95th percentile of
leave-one-out or cross-fitted scores). Then the engine's ``training_recommended`` rates, and near-duplicate
precision and recall on light edits of real training texts against distinct texts, at the calibrated threshold.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _quality_data as data
import _quality_methods as qm
import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest, QueryResult, Thresholds

ENGINE = {"kNN mean, k=10 (novelty_score='knn_mean', the default before)": "knn_mean",
          "kNN k-th, k=10 (the first default)": "knn_kth",
          "kNN mean, centred (novelty_score='knn_centred'), k=10": "knn_centred",
          "novelty (default: class kNN, centred, 'knn_class_centred'), k=10": "knn_class_centred"}  # fmt: skip
DEFAULT = Thresholds().novelty_score
#: The default on a set trained without labels (nor predicted labels): its documented fallback, measured.
UNLABELLED = "default on training without labels (falls back to 'knn_centred')"
FITTED = {"class Mahalanobis (Lee 2018)": qm.class_maha, "relative Mahalanobis (Ren 2021)": qm.relative_maha,
          "SSD k-means Mahalanobis (Sehwag 2021)": qm.ssd}  # fmt: skip
FITTED |= {"PCA residual, 32 dims": qm.pca_residual(32), "PCA residual, 96 dims": qm.pca_residual(96),
           "Mahalanobis on PCA, 32 dims": qm.pca_mahalanobis(32)}  # fmt: skip
FITTED |= {"MSP of a softmax probe on the labels (Hendrycks 2017)": qm.softmax_probe("msp"),
           "energy of a softmax probe on the labels (Liu 2020)": qm.softmax_probe("energy")}  # fmt: skip
LOO = {"LOF-style kNN ratio, k=10": qm.lof_knn(10),
       "class-conditional kNN mean, k=10": qm.grouped_knn(lambda x, labels: labels),
       "cluster-conditional kNN mean, k=10": qm.grouped_knn(lambda x, labels: qm.kmeans(x, qm.clusters_for(len(x)))),
       "class-conditional kNN mean, centred, k=10": qm.centred(qm.grouped_knn(lambda x, labels: labels))}  # fmt: skip
COMBOS = {"mean pct(kNN mean, SSD)": ("mean", ["knn_mean", "SSD k-means Mahalanobis (Sehwag 2021)"]),
          "max pct(kNN mean, SSD)": ("max", ["knn_mean", "SSD k-means Mahalanobis (Sehwag 2021)"]),
          "mean pct(kNN mean, class Maha)": ("mean", ["knn_mean", "class Mahalanobis (Lee 2018)"]),
          "mean pct(kNN mean, LOF)": ("mean", ["knn_mean", "LOF-style kNN ratio, k=10"]),
          "mean pct(kNN mean, PCA residual 32)": ("mean", ["knn_mean", "PCA residual, 32 dims"]),
          "mean pct(kNN mean, class kNN)": ("mean", ["knn_mean", "class-conditional kNN mean, k=10"])}  # fmt: skip
COMBOS["mean pct(centred kNN, centred class kNN)"] = (
    "mean",
    ["knn_centred", "class-conditional kNN mean, centred, k=10"],
)
COMBOS["mean pct(centred class kNN, probe energy)"] = (
    "mean",
    ["class-conditional kNN mean, centred, k=10", "energy of a softmax probe on the labels (Liu 2020)"],
)
ORACLE = "oracle: linear probe trained on the held-out category (not a detector)"


def trained_engine(directory: str, name: str, vectors: np.ndarray, labels: list[str]) -> tuple[Engine, EmbeddingSet]:
    """An embedded engine (exact search: the reference) holding ``vectors`` as training data with ``labels``."""
    engine = Engine(SQLiteStore(directory, ann_threshold=None))
    es = EmbeddingSet.from_dict({"data": name})
    ids = [f"t{i}" for i in range(len(vectors))]
    engine.put(
        BatchHeader("train", es, "training", vectors.shape[1], "t"),
        Records(vectors, ids, ids, [None] * len(ids), labels, [0.0] * len(ids)),
    )
    return engine, es


def ask(engine: Engine, es: EmbeddingSet, vectors: np.ndarray, **thresholds: object) -> list[QueryResult]:
    uris = [f"q{i}" for i in range(len(vectors))]
    return engine.query(QueryRequest.of(es, vectors, uris, thresholds=thresholds or None))


def rates(scores_ood: np.ndarray, scores_ind: np.ndarray, threshold: float) -> tuple[float, ...]:
    """AUROC, FPR@95TPR, TPR and FPR at the calibrated threshold, and TPR at the threshold that gives exactly 5%
    FPR on the in-distribution test inputs (what a perfect calibration could reach with this score)."""
    return (
        qm.auroc(scores_ood, scores_ind),
        qm.fpr_at_95_tpr(scores_ood, scores_ind),
        float(np.mean(scores_ood > threshold)),
        float(np.mean(scores_ind > threshold)),
        float(np.mean(scores_ood > np.percentile(scores_ind, 95))),
    )


def oracle_rates(x: np.ndarray, train: np.ndarray, ind: np.ndarray, ood: np.ndarray) -> tuple[float, ...]:
    """:func:`rates` of the oracle probe, cross-fitted over 5 folds of the held-out category (no calibrated
    threshold exists: it is fitted on the answer)."""
    fold = np.random.default_rng(0).permutation(len(ood)) % 5
    rows = []
    for f in range(5):
        score = qm.oracle_probe(x[train], x[ood[fold != f]])
        r = rates(score(x[ood[fold == f]]), score(x[ind]), np.inf)
        rows.append((r[0], r[1], np.nan, np.nan, r[4]))
    return tuple(np.mean(rows, axis=0))


def held_out_rows(x: np.ndarray, emb: np.ndarray, lab: np.ndarray, train: np.ndarray, ind: np.ndarray,
                  ood: np.ndarray) -> tuple[dict[str, tuple[float, ...]], tuple[float, float]]:  # fmt: skip
    """Per detector (AUROC, FPR95, TPR, FPR) for one held-out category, and the engine's recommended rates."""
    rows: dict[str, tuple[float, ...]] = {}
    calib: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # training, OOD, in-dist. scores
    with tempfile.TemporaryDirectory() as d:
        engine, es = trained_engine(d, "bench", emb[train], list(lab[train]))
        for name, kind in ENGINE.items():
            r_ood, r_ind = ask(engine, es, emb[ood], novelty_score=kind), ask(engine, es, emb[ind], novelty_score=kind)
            s_ood = np.array([r.scores["novelty"] for r in r_ood])
            s_ind = np.array([r.scores["novelty"] for r in r_ind])
            rows[name] = rates(s_ood, s_ind, r_ood[0].thresholds["novelty"])
            if kind == DEFAULT:
                recommended = (np.mean([r.training_recommended for r in r_ood]),
                               np.mean([r.training_recommended for r in r_ind]))  # fmt: skip
        engine.close()
    with tempfile.TemporaryDirectory() as d:
        engine, es = trained_engine(d, "unlabelled", emb[train], [None] * len(train))  # type: ignore[list-item]
        r_ood, r_ind = ask(engine, es, emb[ood]), ask(engine, es, emb[ind])
        rows[UNLABELLED] = rates(
            np.array([r.scores["novelty"] for r in r_ood]),
            np.array([r.scores["novelty"] for r in r_ind]),
            r_ood[0].thresholds["novelty"],
        )
        engine.close()
    xt, lt = x[train], lab[train]
    loo = qm.knn_distances(xt, xt, 10, leave_one_out=True).mean(1)
    calib["knn_mean"] = (loo, qm.knn_distances(x[ood], xt, 10).mean(1), qm.knn_distances(x[ind], xt, 10).mean(1))
    score, ref = qm.centred(qm.grouped_knn(lambda x, labels: np.zeros(len(x))))(xt, lt)
    calib["knn_centred"] = (ref, score(x[ood]), score(x[ind]))
    for name, detector in FITTED.items():
        score = detector(xt, lt)
        ref = qm.cross_fitted(detector, xt, lt)
        calib[name] = (ref, score(x[ood]), score(x[ind]))
    for name, loo_detector in LOO.items():
        score, ref = loo_detector(xt, lt)
        calib[name] = (ref, score(x[ood]), score(x[ind]))
    for name in [*FITTED, *LOO]:
        rows[name] = rates(calib[name][1], calib[name][2], float(np.percentile(calib[name][0], 95)))
    for name, (how, parts) in COMBOS.items():
        agg = np.mean if how == "mean" else np.max
        ref, s_ood, s_ind = (agg([qm.percentile_of(calib[p][0], calib[p][j]) for p in parts], axis=0) for j in range(3))
        rows[name] = rates(s_ood, s_ind, float(np.percentile(ref, 95)))
    rows[ORACLE] = oracle_rates(x, *(np.flatnonzero(m) for m in (train, ind, ood)))
    return rows, recommended


def detection(corpus: data.Corpus, out: list[str]) -> None:
    emb = data.embed(corpus.texts)
    x, lab = data.unit(emb), corpus.labels
    is_train = np.random.default_rng(1).random(len(x)) < 0.7
    table: dict[str, list[tuple[float, ...]]] = {}
    rec: list[tuple[float, float]] = []
    out.append(f"\n### {corpus.name}: {len(x)} texts, {len(corpus.categories)} categories, each held out in turn\n")
    out.append(
        "| held out | detector | AUROC | FPR@95TPR | TPR at calibrated | FPR at calibrated | TPR at 5% test FPR |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for held in corpus.categories:
        rows, r = held_out_rows(x, emb, lab, is_train & (lab != held), ~is_train & (lab != held), lab == held)
        rec.append(r)
        for name, row in rows.items():
            table.setdefault(name, []).append(row)
            out.append(f"| {held} | {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    print(f"\n{corpus.name}: mean over {len(corpus.categories)} held-out categories")
    print(f"  {'detector':44} {'AUROC':>6} {'FPR95':>6} {'TPR':>6} {'FPR':>6} {'TPR@5%':>6}")
    summary = [
        f"\n#### {corpus.name}: means\n",
        "| detector | AUROC | FPR@95TPR | TPR | FPR | TPR at 5% test FPR |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in table.items():
        m = np.mean(rows, axis=0)
        print(f"  {name[:44]:44} " + " ".join(f"{v:6.3f}" for v in m))
        summary.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in m) + " |")
    tpr, fpr = np.mean(rec, axis=0)
    line = f"training_recommended (default): on held-out-category inputs {tpr:.3f}, on in-distribution inputs {fpr:.3f}"
    print("  " + line)
    out.extend([*summary, "", line])


def near_duplicates(corpus: data.Corpus, out: list[str]) -> None:
    """Light edits of training texts must be tagged near_duplicate; distinct unseen texts must not."""
    emb = data.embed(corpus.texts)
    is_train = np.random.default_rng(1).random(len(emb)) < 0.7
    train = np.flatnonzero(is_train)
    rng = np.random.default_rng(2)
    sources = rng.choice(train, size=400, replace=False)
    edited = data.embed([data.edit(corpus.texts[i], rng) for i in sources])
    with tempfile.TemporaryDirectory() as d:
        engine, es = trained_engine(d, "dup", emb[train], list(corpus.labels[train]))
        r_dup, r_new = ask(engine, es, edited), ask(engine, es, emb[~is_train])
        engine.close()
    tp = sum("near_duplicate" in r.recommendations for r in r_dup)
    fp = sum("near_duplicate" in r.recommendations for r in r_new)
    both = sum({"near_duplicate", "out_of_distribution"} <= set(r.recommendations) for r in r_dup + r_new)
    # Precision at a 1:1 mix, so that it does not depend on how many distinct texts happen to be tested.
    rate_fp = fp / len(r_new)
    precision = (tp / len(r_dup)) / max(1e-12, tp / len(r_dup) + rate_fp)
    line = (
        f"{corpus.name}: {len(r_dup)} light edits of training texts vs {len(r_new)} distinct texts: recall "
        f"{tp / len(r_dup):.3f}, distinct texts tagged {fp} ({rate_fp:.3f}), precision (1:1) {precision:.3f}, "
        f"threshold {r_dup[0].thresholds['near_duplicate']:.4f} (calibrated); tagged both near_duplicate and "
        f"out_of_distribution: {both}"
    )
    print(line)
    out.append(f"- {line}")


def latency(n: int = 10_000, dim: int = 384, queries: int = 300, classes: int = 20) -> str:
    """p50 of one-query calls per novelty score on one engine (exact search), interleaved: the cost of centring
    and of the per-label score (training labelled with ``classes`` labels)."""
    rng = np.random.default_rng(0)
    train = (rng.normal(size=dim) + rng.normal(size=(n, dim))).astype(np.float32)
    q = (rng.normal(size=dim) + rng.normal(size=(queries, dim))).astype(np.float32)
    times: dict[str, list[float]] = {"knn_mean": [], "knn_centred": [], "knn_class_centred": []}
    with tempfile.TemporaryDirectory() as d:
        engine, es = trained_engine(d, "latency", train, [f"c{i % classes}" for i in range(n)])
        for kind in times:
            ask(engine, es, q[:1], novelty_score=kind)  # calibration, once per kind, not timed
        for i in range(queries):
            for kind in times:
                t0 = time.perf_counter()
                ask(engine, es, q[i : i + 1], novelty_score=kind)
                times[kind].append(time.perf_counter() - t0)
        engine.close()
    base, cen, cls = (float(np.median(times[k])) * 1e3 for k in times)
    return (
        f"one query against {n:,} x {dim}-d training ({classes} labels, exact search), p50 of {queries}: "
        f"knn_class_centred (default) {cls:.2f} ms ({cls / base - 1:+.0%}), knn_centred {cen:.2f} ms "
        f"({cen / base - 1:+.0%}), knn_mean {base:.2f} ms (baseline, same run)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per", type=int, default=200)
    parser.add_argument("--markdown", type=Path, help="write the per-category tables here")
    args = parser.parse_args()
    found = data.corpora(args.per)
    if not found:
        return
    out = ["## Detection, per held-out category (generated by benchmarks/bench_quality.py)"]
    for corpus in found:
        detection(corpus, out)
    out.append("\n### Near duplicates\n")
    print()
    for corpus in found:
        near_duplicates(corpus, out)
    line = latency()
    print("\n" + line)
    out += ["\n### Cost of the centred novelty\n", f"- {line}"]
    if args.markdown:
        data.write_section(args.markdown, "bench_quality", out)


if __name__ == "__main__":
    main()
