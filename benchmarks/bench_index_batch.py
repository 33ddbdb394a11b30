"""Batched queries on the ANN path (issue 16): 1,000 vectors in one ``QuerySession.log`` against 1,000 calls of one,
embedded, on a set large enough for the store's usearch index (target: 10x the throughput).

    python benchmarks/bench_index_batch.py [--training 30000] [--batch 1000] [--rounds 3] [--scores S,S]

For each novelty score (``--scores``; by default the default one, ``knn_class_centred``, and ``knn_mean``), beside
the two, in the same run and interleaved with them: usearch's own search of the same queries on the set's index
(one call of the whole matrix, all cores), which no batch can go below, and the same 1,000 through it one by one.
Both ask the index for as many candidates as the engine does under that score (the default score re-ranks 200 per
label on this labelled set, so the engine asks for 400). The answers are also checked: every row of the batch must
equal that query's single-call answer. Recall@10 of the engine's neighbours (its candidates re-ranked with the exact
vectors) is measured against exact search. CPU time of this process is printed beside each wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import verdict
from bench_wire import DIM, ES, clustered, train

from chroma_core.sessions import QuerySession
from chroma_core.transport import LocalTransport


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _compare(
    session: QuerySession,
    uris: list[str],
    queries: np.ndarray,
    index: Any,
    normed: np.ndarray,
    asked: int,
    rounds: int,
    score: str,
) -> None:
    """The batch against single calls under one score, with usearch's own search of ``asked`` candidates beside."""

    def singles() -> None:
        for uri, q in zip(uris, queries, strict=True):
            session.log(input_uri=uri, embedding=q)

    def raw_singles() -> None:
        for q in normed:
            index.search(q[None, :], asked)

    rows: dict[str, list[tuple[float, float]]] = {
        "batch": [],
        "single": [],
        "usearch batch": [],
        "usearch single": [],
    }
    for _ in range(rounds):  # interleaved: each figure and its baseline share the machine's noise
        rows["batch"].append(timed(lambda: session.log(input_uri=uris, embedding=queries)))
        rows["single"].append(timed(singles))
        rows["usearch batch"].append(timed(lambda: index.search(normed, asked)))
        rows["usearch single"].append(timed(raw_singles))
    med = {name: statistics.median(w for w, _ in v) for name, v in rows.items()}
    cpu = {name: statistics.median(c for _, c in v) for name, v in rows.items()}
    n = len(queries)
    print(f"\n{score}: {n:,} queries, median of {rounds} interleaved rounds; usearch asked for {asked} candidates")
    for name, took in med.items():
        print(
            f"  {name:15s} {took * 1e3:8.1f} ms (CPU {cpu[name] * 1e3:7.1f})   {took / n * 1e3:6.3f} ms a query   "
            f"{n / took:8.0f}/s"
        )
    ratio = med["single"] / med["batch"]
    print(f"  batched / one by one: {ratio:.1f}x   (target >= 10x: {verdict(ratio >= 10)})")
    print(
        f"  of the batch, usearch's own search is {med['usearch batch'] / med['batch']:.0%}; the most any batch "
        f"could gain here (one by one / usearch batch) is {med['single'] / med['usearch batch']:.1f}x"
    )
    batch = session.log(input_uri=uris, embedding=queries)
    same = all(
        batch[i].to_dict() == session.log(input_uri=uris[i], embedding=queries[i]).to_dict() for i in range(0, n, 50)
    )
    print(f"  batch rows equal to their single-call answers (every 50th): {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--training", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scores", default="knn_class_centred,knn_mean", help="novelty scores, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        local = LocalTransport(Path(d) / "embedded")
        t0 = time.perf_counter()
        train(local, args.training)
        store = local.engine.store
        if not store.wait_for_index(ES.id, 1800):  # type: ignore[attr-defined]
            raise SystemExit("the index was not ready in 1800 s")
        print(f"{args.training:,} x {DIM}-d training vectors stored and indexed in {time.perf_counter() - t0:.0f} s")
        queries = clustered(args.batch, 7)
        uris = [f"/q/{i}" for i in range(len(queries))]
        index = store.indexes._entries[ES.id].index  # type: ignore[attr-defined]
        normed = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        for score in args.scores.split(","):
            session = QuerySession(ES, transport=local, store=False, thresholds={"novelty_score": score})
            session.log(input_uri=uris[:2], embedding=queries[:2])  # loads and calibrates the set's model
            local.engine.wait_for_model(ES.id, 600)
            model = local.engine._model(ES.id)
            # What the engine's search asks of the index for this score (SetModel.query, Neighbours.search).
            th, n = session.thresholds, len(model)
            wanted = max(model._wanted(min(th.k, n), score, n), th.neighbors)
            asked = max(2 * wanted, wanted + 10)
            _compare(session, uris, queries, index, normed, asked, args.rounds, score)
            session.close()
        training = clustered(args.training, 0)
        truth = np.argsort(-(normed @ training.T), axis=1)[:, :10]
        model = local.engine._model(ES.id)  # the engine's own search: an answer lists only 5 neighbours
        _, found = model.search.search(normed.astype(np.float32), 10)
        recall = float(
            np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found.tolist(), truth.tolist(), strict=True)])
        )
        print(
            f"\nrecall@10 of the engine's neighbours (candidates re-ranked exactly) against exact search: {recall:.3f}"
        )
        local.close()


if __name__ == "__main__":
    main()
