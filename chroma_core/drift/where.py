"""Where a set's production moved: k-means clusters of training and production together, ranked by drift ratio.

A cluster's drift ratio is its share of the production inputs over its share of the training inputs, each
smoothed by half an input so that a cluster training never reached gives a large but finite ratio. Clusters are
fitted on a sample of both modes at once: a region only production reaches gets clusters of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from chroma_core.drift.kmeans import assign, kmeans
from chroma_core.drift.stats import normalized
from chroma_core.types.drift import Cluster, Example

__all__ = ["FIT_SAMPLE", "Regions"]

#: Inputs of each mode the clusters are fitted on (and training inputs they are counted over).
FIT_SAMPLE = 4000


class _Reads(Protocol):
    def vectors_at(self, set_id: str, mode: Any, rows: Any) -> np.ndarray: ...
    def records_at(self, set_id: str, mode: Any, rows: Any) -> Sequence[Any]: ...


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size=size, replace=False))


class Regions:
    """Clusters fitted once for a set; :meth:`clusters` counts and ranks any group of its production inputs."""

    def __init__(
        self,
        store: _Reads,
        set_id: str,
        n_training: int,
        production_rows: np.ndarray,
        k: int,
        rng: np.random.Generator,
        sample: int = FIT_SAMPLE,
    ) -> None:
        self.store, self.set_id = store, set_id
        self.training_rows = _sample(n_training, sample, rng).astype(np.int64)
        training = normalized(store.vectors_at(set_id, "training", self.training_rows))
        picked = production_rows[_sample(len(production_rows), sample, rng)]
        production = normalized(store.vectors_at(set_id, "production", picked)) if len(picked) else training[:0]
        pooled = np.concatenate([training, production])
        # Ten inputs a cluster at least, or the ratios are noise.
        self.centroids, _ = kmeans(pooled, max(2, min(k, len(pooled) // 10)), rng=rng)
        self.training_labels = assign(training, self.centroids)
        self.training_counts = np.bincount(self.training_labels, minlength=len(self.centroids))
        self._training = training

    def __len__(self) -> int:
        return len(self.centroids)

    def label(self, vectors: np.ndarray) -> np.ndarray:
        return assign(normalized(vectors), self.centroids)

    def clusters(
        self,
        rows: np.ndarray,
        labels: np.ndarray,
        recommended: np.ndarray | None,
        *,
        examples: int,
        top: int | None = None,
        vectors: np.ndarray | None = None,
    ) -> tuple[Cluster, ...]:
        """Clusters of the production inputs ``rows`` (cluster ``labels``), highest drift ratio first.

        ``recommended``: whether each was recommended for labelling (NaN where it has no answer); ``top`` keeps
        the first clusters that hold any of these inputs. Examples are the inputs nearest each centroid
        (training inputs where the cluster holds no production input).
        """
        k = len(self.centroids)
        counts = np.bincount(labels, minlength=k) if len(labels) else np.zeros(k, dtype=np.int64)
        train_share = (self.training_counts + 0.5) / (self.training_counts.sum() + 0.5 * k)
        prod_share = (counts + 0.5) / (counts.sum() + 0.5 * k)
        ratio = prod_share / train_share
        order = [int(c) for c in np.argsort(-ratio, kind="stable") if top is None or counts[c] > 0]
        if top is not None:
            order = order[:top]
        units = normalized(vectors) if vectors is not None else None
        out = []
        for c in order:
            inside = np.flatnonzero(labels == c)
            share = None
            if recommended is not None and len(inside):
                known = recommended[inside]
                known = known[~np.isnan(known)]
                share = float(known.mean()) if len(known) else None
            out.append(
                Cluster(
                    c,
                    int(self.training_counts[c]),
                    int(counts[c]),
                    float(ratio[c]),
                    share,
                    self._examples(c, rows[inside], None if units is None else units[inside], examples),
                )
            )
        return tuple(out)

    def _examples(self, c: int, rows: np.ndarray, units: np.ndarray | None, n: int) -> tuple[Example, ...]:
        if n <= 0:
            return ()
        mode = "production"
        if not len(rows):
            mode, rows = "training", self.training_rows[self.training_labels == c]
            units = self._training[self.training_labels == c]
        if not len(rows):
            return ()
        if units is None:
            units = normalized(self.store.vectors_at(self.set_id, mode, rows))
        nearest = rows[np.argsort(-(units @ self.centroids[c]))[:n]]
        return tuple(Example(r.input_uri, r.preview) for r in self.store.records_at(self.set_id, mode, nearest))
