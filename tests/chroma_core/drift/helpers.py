"""A set with training data and production windows at chosen times, on a real embedded engine."""

from __future__ import annotations

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import new_batch
from chroma_core.transport.local import LocalTransport
from chroma_core.types import QueryRequest, Thresholds

DAY = 86400.0
T0 = 1_700_000_000.0


def blobs(rng: np.random.Generator, centers: np.ndarray, n: int, noise: float = 0.35) -> np.ndarray:
    pick = rng.integers(len(centers), size=n)
    return (centers[pick] + noise * rng.normal(size=(n, centers.shape[1]))).astype(np.float32)


def training_set(
    tmp_path, n: int = 800, dim: int = 24, seed: int = 0, name: str = "drift", transport=None, labelled=False
):
    """(transport, set, known centers, a novel center): training drawn around four centers (embedded by default),
    each labelled with its center when ``labelled``."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(5, dim))
    transport = transport if transport is not None else LocalTransport(tmp_path / "store")
    es = EmbeddingSet.from_dict({"model": name, "model_version": "1", "layer": "x"})
    pick = rng.integers(4, size=n)
    x = (centers[pick] + 0.35 * rng.normal(size=(n, dim))).astype(np.float32)
    labels = [f"c{c}" for c in pick] if labelled else None
    transport.upload(*new_batch(es, "training", x, [f"train/{i}" for i in range(n)], labels=labels))
    return transport, es, centers[:4], centers[4:]


def log_window(transport, es, vectors: np.ndarray, start: float, tag: str, previews=None, thresholds=None) -> None:
    """Answer ``vectors`` now (with ``thresholds``) and store them as production inputs logged during the day from
    ``start``."""
    uris = [f"{tag}/{i}" for i in range(len(vectors))]
    results = transport.query(QueryRequest(es.id, vectors, tuple(uris), thresholds=Thresholds.coerce(thresholds)))
    times = list(start + np.linspace(0, DAY * 0.9, len(vectors)))
    transport.upload(*new_batch(es, "production", vectors, uris, times=times, results=results, previews=previews))
