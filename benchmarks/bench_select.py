"""What to label next, on real data (issue 15): which `select` strategy covers the most of what is new.

Two labelled corpora (benchmarks/_quality_data.py: fortunes and WordNet glosses, real MiniLM embeddings, cached),
up to ``--per`` texts per category. In each of nine rotations (one per category, which is then the commonest new
one), four categories are held out (new to the model) and the other five are known: training is half of the known
texts (labelled), production is the other half plus 240, 80, 25 and 8 texts of the held-out categories (new
failures are rare, some very rare), each input with a predicted label from a nearest-centroid classifier over the
known classes (what a deployed model would say: always a known class). Production inputs are stored with the
engine's answers, then ``select`` picks ``-n`` (100) of them with each strategy, through a real embedded engine:

    python benchmarks/bench_select.py [--per 600] [--markdown docs/recommendations-benchmark.md]

Per strategy, the mean over rotations of: the share of picks that are truly novel (from a held-out category), how
many of the 4 held-out categories and of 30 k-means clusters of the held-out texts the picks reach, and how many of
50 k-means clusters of all production inputs. Baselines in the same run: random picks (from all production inputs,
and from the recommended ones), the top priorities alone, and MMR at the default diversity.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _quality_data as data
import _quality_methods as qm
import numpy as np
from bench_quality import trained_engine

from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest, SelectRequest

#: name -> SelectRequest weights (diversity, typicality, balance); None = a random baseline.
STRATEGIES: dict[str, tuple[float, float, float] | None] = {
    "every recommended input (the ceiling)": None,
    "random, all production (baseline)": None,
    "random, recommended (baseline)": None,
    "top priority (diversity 0)": (0.0, 0.0, 0.0),
    "MMR, diversity 0.5 (old default)": (0.5, 0.0, 0.0),
    "MMR, diversity 1 (farthest point)": (1.0, 0.0, 0.0),
    "MMR 0.5 + typicality 0.5": (0.5, 0.5, 0.0),
    "MMR 0.5 + typicality 1": (0.5, 1.0, 0.0),
    "top priority + typicality 1": (0.0, 1.0, 0.0),
    "MMR 0.7 + typicality 1 (default)": (0.7, 1.0, 0.0),
    "MMR 1 + typicality 1": (1.0, 1.0, 0.0),
    "MMR 0.5 + balance 0.5": (0.5, 0.0, 0.5),
    "MMR 0.5 + balance 1": (0.5, 0.0, 1.0),
    "MMR 0.5 + typicality 0.5 + balance 0.5": (0.5, 0.5, 0.5),
    "MMR 0.5 + typicality 0.5 + balance 1": (0.5, 0.5, 1.0),
    "MMR 0.5 + typicality 1 + balance 1": (0.5, 1.0, 1.0),
    "MMR 0.7 + typicality 1 + balance 0.5": (0.7, 1.0, 0.5),
    "MMR 0.7 + typicality 1 + balance 1": (0.7, 1.0, 1.0),
    "MMR 0.7 + typicality 0.5": (0.7, 0.5, 0.0),
}
#: How many texts of each held-out category reach production: new failures are rare, and some are very rare.
HELD_SIZES = (240, 80, 25, 8)
DEFAULT, OLD = "MMR 0.7 + typicality 1 (default)", "MMR, diversity 0.5 (old default)"
METRICS = (
    "novel share",
    f"held-out categories (of {len(HELD_SIZES)})",
    "novel clusters (of 30)",
    "all clusters (of 50)",
)
RANDOM_DRAWS = 20


def nearest_centroid(train: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    names = np.unique(labels)
    centres = data.unit(np.stack([train[labels == c].mean(0) for c in names]))
    return names[(queries @ centres.T).argmax(1)]  # type: ignore[no-any-return]


def coverage(picks: np.ndarray, novel: np.ndarray, category: np.ndarray, novel_cluster: np.ndarray,
             cluster: np.ndarray) -> tuple[float, ...]:  # fmt: skip
    """The four :data:`METRICS` of production rows ``picks``."""
    new = picks[novel[picks]]
    return (
        len(new) / max(1, len(picks)),
        len(set(category[new])),
        len(set(novel_cluster[new])),
        len(set(cluster[picks])),
    )


def rotation(x: np.ndarray, emb: np.ndarray, lab: np.ndarray, held: list[str], n: int, rng: np.random.Generator,
             unlabelled: bool = False) -> tuple[dict[str, tuple[float, ...]], dict[str, float], int, int]:  # fmt: skip
    """Each strategy's coverage with ``held`` held out; also select's time per strategy and the pool sizes."""
    is_new = np.isin(lab, held)
    train = np.flatnonzero(~is_new & (rng.random(len(x)) < 0.5))
    known = np.flatnonzero(~is_new)
    kept = [rng.permutation(np.flatnonzero(lab == c))[:size] for c, size in zip(held, HELD_SIZES, strict=True)]
    prod = np.sort(np.concatenate([np.setdiff1d(known, train), *kept]))
    novel, category = is_new[prod], lab[prod]
    novel_cluster = np.full(len(prod), -1)
    novel_cluster[novel] = qm.kmeans(x[prod][novel], 30)
    cluster = qm.kmeans(x[prod], 50)
    predicted = nearest_centroid(x[train], lab[train], x[prod])
    out: dict[str, tuple[float, ...]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        labels = [None] * len(train) if unlabelled else list(lab[train])
        engine, es = trained_engine(d, "select", emb[train], labels)  # type: ignore[arg-type]
        uris = [str(i) for i in range(len(prod))]
        inferences = [None if unlabelled else {"label": str(p)} for p in predicted]
        results = engine.query(QueryRequest.of(es, emb[prod], uris, inferences))
        engine.put(
            BatchHeader("prod", es, "production", emb.shape[1], "p"),
            Records(
                emb[prod],
                [f"p{i}" for i in uris],
                uris,
                inferences,
                [None] * len(uris),
                [0.0] * len(uris),
                results=list(results),
            ),
        )
        recommended = np.flatnonzero([r.training_recommended for r in results])
        for name, weights in STRATEGIES.items():
            if name.startswith("every"):
                out[name] = coverage(recommended, novel, category, novel_cluster, cluster)
                continue
            if weights is None:
                source = np.arange(len(prod)) if "all" in name else recommended
                draws = [rng.choice(source, min(n, len(source)), replace=False) for _ in range(RANDOM_DRAWS)]
                out[name] = tuple(np.mean([coverage(p, novel, category, novel_cluster, cluster) for p in draws], 0))
                continue
            diversity, typicality, balance = weights
            t0 = time.perf_counter()
            selection = engine.select(
                SelectRequest(es.id, n, diversity, typicality=typicality, balance=balance)
            )  # fmt: skip
            seconds[name] = time.perf_counter() - t0
            picks = np.array([int(u) for u in selection.input_uris])
            out[name] = coverage(picks, novel, category, novel_cluster, cluster)
        engine.close()
    return out, seconds, len(prod), len(recommended)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per", type=int, default=600, help="texts per category at most (default 600)")
    parser.add_argument("-n", type=int, default=100, help="picks per selection (default 100)")
    parser.add_argument("--markdown", type=Path, help="write the tables into this file's bench_select section")
    parser.add_argument("--only", help="one corpus (fortunes or wordnet)")
    parser.add_argument("--seed", type=int, default=5, help="of the splits and random baselines (default 5)")
    parser.add_argument(
        "--unlabelled",
        action="store_true",
        help="training without labels and production without predictions (balance then uses k-means clusters)",
    )
    args = parser.parse_args()
    inputs = (
        "no labels anywhere (unlabelled training, no predicted labels: balance uses k-means clusters)."
        if args.unlabelled
        else "each input with a nearest-centroid predicted label (a known class)."
    )
    lines = [
        "## Selection for labelling (generated by benchmarks/bench_select.py)",
        "",
        f"`python benchmarks/bench_select.py --per {args.per} -n {args.n}"
        f"{' --unlabelled' if args.unlabelled else ''} --seed {args.seed}`: nine rotations per corpus, four "
        "categories held out in each (new), five known; training is half of the known texts, production the other "
        f"half plus {', '.join(map(str, HELD_SIZES))} texts of the held-out categories, {inputs} "
        "Means over the rotations; "
        f"random baselines are means of {RANDOM_DRAWS} draws.",
    ]
    for corpus in data.corpora(args.per):
        if args.only and corpus.name != args.only:
            continue
        emb = data.embed(corpus.texts)
        x, lab = data.unit(emb), corpus.labels
        cats = corpus.categories
        rng = np.random.default_rng(args.seed)
        runs, times, sizes = [], [], []
        for r in range(len(cats)):
            held = [cats[(r + i) % len(cats)] for i in range(len(HELD_SIZES))]
            cov, sec, n_prod, n_rec = rotation(x, emb, lab, held, args.n, rng, args.unlabelled)
            runs.append(cov)
            times.append(sec)
            sizes.append((n_prod, n_rec))
        head = (
            f"{corpus.name}: {len(x)} texts; production {np.mean([s[0] for s in sizes]):.0f} inputs, of which "
            f"{np.mean([s[1] for s in sizes]):.0f} recommended (means over {len(cats)} rotations); {args.n} picks"
        )
        print(f"\n{head}\n  {'strategy':42} " + " ".join(f"{m[:14]:>14}" for m in METRICS) + "  select s")
        lines += ["", f"### {head}", "", "| strategy | " + " | ".join(METRICS) + " | select (s) |",
                  "|---" * (len(METRICS) + 2) + "|"]  # fmt: skip
        for name in STRATEGIES:
            m = np.mean([run[name] for run in runs], axis=0)
            t = np.median([sec[name] for sec in times]) if name in times[0] else float("nan")
            cells = [f"{m[0]:.2f}", *(f"{v:.1f}" for v in m[1:])]
            shown = "" if np.isnan(t) else f"{t:.2f}"
            print(f"  {name:42} " + " ".join(f"{c:>14}" for c in cells) + f"  {shown:>8}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {shown} |")
        # Paired, per rotation: the same data for both, so the noise of which texts were drawn cancels.
        pairs = [(run[DEFAULT], run[OLD]) for run in runs]
        paired = [
            f"{metric}: higher in {sum(a[j] > b[j] for a, b in pairs)}, equal in "
            f"{sum(a[j] == b[j] for a, b in pairs)}, lower in {sum(a[j] < b[j] for a, b in pairs)}"
            for j, metric in enumerate(METRICS[:3])
        ]
        line = f"{DEFAULT} against {OLD}, per rotation (of {len(runs)}): " + "; ".join(paired)
        print("  " + line)
        lines += ["", line]
    if args.markdown:
        data.write_section(args.markdown, "bench_select_unlabelled" if args.unlabelled else "bench_select", lines)


if __name__ == "__main__":
    main()
