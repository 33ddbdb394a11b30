"""How a query embedding is judged against one set's training data.

Scores (all documented in docs/recommendations.md):

- ``novelty``: cosine distance to the k-th nearest training embedding (Sun et al., 2022, "Out-of-distribution
  detection with deep nearest neighbors"); high means far from anything the model saw.
- ``nearest_similarity``: cosine similarity to the nearest training embedding; near 1 means a near duplicate.
- ``uncertainty``: ``1 - (p1 - p2)`` from the class scores in ``inferences`` (top-two margin).
- ``label_disagreement``: the share of the k nearest training inputs whose label differs from the prediction.

Thresholds are calibrated per set from the training data's own leave-one-out scores: each of up to
``calibration_sample`` training embeddings is scored against all the others, and the threshold is a percentile of
those scores (95th for novelty, so about 5% of in-distribution queries are flagged; 1st for the near-duplicate
distance, bounded to [0.005, 0.05]). Users override any of them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chroma_core.engine.index import normalize
from chroma_core.engine.search import Neighbours
from chroma_core.types import Neighbor, QueryRequest, QueryResult, Thresholds
from chroma_core.vectors import Matrix

__all__ = ["Calibration", "SetModel", "class_scores", "predicted_label", "uncertainty_of"]

# Absolute bounds on the calibrated near-duplicate distance: a dense training set must not make everything a
# "duplicate", and a sparse one must still call exact copies duplicates.
_DUP_MIN, _DUP_MAX = 0.005, 0.05
_DEFAULT_UNCERTAINTY = 0.5  # margin under 0.5 when training records carry no class scores to calibrate from


def class_scores(inferences: Any) -> list[tuple[Any, float]]:
    """(label, score) pairs found in common inference shapes, highest first; empty when there are none.

    Understood: ``{"label": L, "score": s}`` and lists of them (Hugging Face pipelines, possibly nested one level),
    ``{"scores": [...], "labels": [...]}``, and ``{"probabilities": {label: p}}``.
    """
    pairs: list[tuple[Any, float]] = []
    item = inferences
    if isinstance(item, list) and len(item) == 1 and isinstance(item[0], list):
        item = item[0]
    if isinstance(item, dict):
        if "label" in item and isinstance(item.get("score"), (int, float)):
            pairs = [(item["label"], float(item["score"]))]
        elif isinstance(item.get("scores"), list):
            labels = item.get("labels") or list(range(len(item["scores"])))
            scores = item["scores"]
            pairs = [(lab, float(s)) for lab, s in zip(labels, scores, strict=False) if isinstance(s, (int, float))]
        elif isinstance(item.get("probabilities"), dict):
            pairs = [(lab, float(s)) for lab, s in item["probabilities"].items() if isinstance(s, (int, float))]
    elif isinstance(item, list):
        pairs = [
            (d["label"], float(d["score"]))
            for d in item
            if isinstance(d, dict) and "label" in d and isinstance(d.get("score"), (int, float))
        ]
    pairs = [(lab, s) for lab, s in pairs if np.isfinite(s)]
    pairs.sort(key=lambda p: -p[1])
    return pairs


def uncertainty_of(inferences: Any) -> float | None:
    pairs = class_scores(inferences)
    if not pairs:
        return None
    p1 = pairs[0][1]
    p2 = pairs[1][1] if len(pairs) > 1 else max(0.0, 1.0 - p1)
    return float(min(1.0, max(0.0, 1.0 - (p1 - p2))))


def predicted_label(inferences: Any) -> Any:
    pairs = class_scores(inferences)
    if pairs:
        return pairs[0][0]
    if isinstance(inferences, dict) and "label" in inferences:
        return inferences["label"]
    return None


def _label_key(label: Any) -> str | None:
    return None if label is None else json.dumps(label, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Calibration:
    n_training: int
    sample: int
    novelty: float
    near_duplicate: float
    uncertainty: float | None
    label_disagreement: float | None


class SetModel:
    """One set's training data in memory: its search, the records' uris and labels, and the calibration.

    ``state`` is where calibrations are kept between processes (a store's ``read_state``/``write_state``), valid
    for the set's ``revision`` and training size they were computed at.
    """

    def __init__(
        self,
        set_id: str,
        dimension: int,
        *,
        search: Neighbours | None = None,
        revision: int = 0,
        state: tuple[Callable[[str], dict[str, Any] | None], Callable[[str, dict[str, Any]], object]] | None = None,
        calibration_sample: int = 1000,
        seed: int = 0,
    ) -> None:
        self.set_id = set_id
        self.dimension = dimension
        self.search = search if search is not None else Neighbours(dimension)
        self.revision = revision
        self._state = state
        self.uris: list[str] = []
        self.labels: list[str | None] = []  # canonical JSON keys of the training labels
        self.raw_labels: list[Any] = []
        self.uncertainties: list[float | None] = []
        self.calibration_sample = calibration_sample
        self._rng = np.random.default_rng(seed)
        self._calibrations: dict[tuple[float, float, int], Calibration] = {}

    def __len__(self) -> int:
        return len(self.uris)

    def row_vectors(self, rows: np.ndarray) -> Matrix:
        """Normalised float32 training vectors by row (exact, whatever the index's precision)."""
        return self.search.row_vectors(rows)

    def _search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.search.search(queries, k)

    def add(
        self, vectors: Matrix | None, uris: Sequence[str], labels: Sequence[Any], inferences: Sequence[Any]
    ) -> None:
        """Add training rows; ``vectors`` are those of the rows the store's index does not cover (None: none)."""
        if vectors is not None and len(vectors):
            self.search.add(normalize(vectors))
        self.uris.extend(uris)
        for label, inf in zip(labels, inferences, strict=False):
            lab = label if label is not None else predicted_label(inf)
            self.raw_labels.append(lab)
            self.labels.append(_label_key(lab))
            self.uncertainties.append(uncertainty_of(inf))
        self._calibrations.clear()

    def _neighbors(self, queries: Matrix, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if exclude is None:
            return self._search(queries, k)
        sims, rows = self._search(queries, k + 1)
        # Leave one out: drop the query's own row, or (if many exact copies pushed it out) the last one.
        keep = rows != exclude[:, None]
        drop_last = keep.all(axis=1)
        keep[drop_last, -1] = False
        sims = sims[keep].reshape(len(queries), -1)[:, :k]
        rows = rows[keep].reshape(len(queries), -1)[:, :k]
        return sims, rows

    def _disagreement(self, rows: np.ndarray, predicted: Sequence[str | None]) -> list[float | None]:
        out: list[float | None] = []
        for r, pred in zip(rows, predicted, strict=False):
            labs = [self.labels[i] for i in r if self.labels[i] is not None]
            out.append(None if pred is None or not labs else sum(lab != pred for lab in labs) / len(labs))
        return out

    def calibration(self, th: Thresholds) -> Calibration:
        n = len(self)
        k = min(th.k, n - 1)
        cached = self._calibrations.get((th.percentile, th.duplicate_percentile, k))
        if cached is None:
            cached = self._calibrations[(th.percentile, th.duplicate_percentile, k)] = self._calibrate(th, n, k)
        return cached

    def _calibrate(self, th: Thresholds, n: int, k: int) -> Calibration:
        key = f"calibration/{th.percentile:g}/{th.duplicate_percentile:g}/{k}/{th.min_training}"
        kept = self._state[0](key) if self._state is not None else None
        if kept is not None and (kept.get("revision"), kept.get("n_training")) == (self.revision, n):
            return Calibration(**{f.name: kept[f.name] for f in dataclasses.fields(Calibration)})
        m = min(n, self.calibration_sample)
        sample = np.sort(self._rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        queries = self.row_vectors(sample)
        sims, rows = self._neighbors(queries, k, exclude=sample)
        novelty = 1.0 - sims[:, k - 1]
        nn1 = 1.0 - sims[:, 0]
        p = th.percentile
        unc = [u for u in (self.uncertainties[i] for i in sample) if u is not None]
        dis = [d for d in self._disagreement(rows, [self.labels[i] for i in sample]) if d is not None]
        cal = Calibration(
            n_training=n,
            sample=m,
            novelty=float(np.percentile(novelty, p)),
            near_duplicate=float(np.clip(np.percentile(nn1, th.duplicate_percentile), _DUP_MIN, _DUP_MAX)),
            uncertainty=float(np.percentile(unc, p)) if len(unc) >= th.min_training else None,
            label_disagreement=max(0.5, float(np.percentile(dis, p))) if len(dis) >= th.min_training else None,
        )
        if self._state is not None:  # so another process (or replica) gives the same answers without recomputing
            self._state[1](key, {**dataclasses.asdict(cal), "revision": self.revision})
        return cal

    def query(self, request: QueryRequest) -> list[QueryResult]:
        th, input_uris = request.thresholds, request.input_uris
        inferences = request.inferences or (None,) * len(request)
        n = len(self)
        if n < th.min_training:
            scores: dict[str, float | None] = {"training_size": float(n)}
            return [
                QueryResult(
                    uri,
                    ("insufficient_training_data",),
                    False,
                    False,
                    scores=scores,
                    thresholds={"min_training": float(th.min_training)},
                    set_id=self.set_id,
                )
                for uri in input_uris
            ]
        cal = self.calibration(th)
        k = min(th.k, n)
        queries = normalize(request.vectors)
        sims, rows = self._neighbors(queries, max(k, th.neighbors))
        t_nov = th.novelty if th.novelty is not None else cal.novelty
        t_dup = th.near_duplicate if th.near_duplicate is not None else cal.near_duplicate
        t_unc = (
            th.uncertainty
            if th.uncertainty is not None
            else (cal.uncertainty if cal.uncertainty is not None else _DEFAULT_UNCERTAINTY)
        )
        t_dis = th.label_disagreement if th.label_disagreement is not None else cal.label_disagreement
        thresholds = {"novelty": t_nov, "near_duplicate": t_dup, "uncertainty": t_unc, "label_disagreement": t_dis}
        predicted = [_label_key(predicted_label(inf)) for inf in inferences]
        disagreement = self._disagreement(rows[:, :k], predicted)
        results = []
        for i, uri in enumerate(input_uris):
            novelty = float(1.0 - sims[i, k - 1])
            nearest_sim = float(sims[i, 0])
            unc = uncertainty_of(inferences[i])
            dis = disagreement[i]
            tags = []
            if novelty > t_nov:
                tags.append("out_of_distribution")
            if 1.0 - nearest_sim <= t_dup:
                tags.append("near_duplicate")
            if unc is not None and unc > t_unc:
                tags.append("uncertain")
            if dis is not None and t_dis is not None and dis > t_dis:
                tags.append("label_disagreement")
            not_useful = "near_duplicate" in tags
            recommended = not not_useful and bool(tags)
            nearest = tuple(
                Neighbor(self.uris[r], float(s), self.raw_labels[r])
                for s, r in zip(sims[i, : th.neighbors], rows[i, : th.neighbors], strict=False)
            )
            results.append(
                QueryResult(
                    input_uri=uri,
                    recommendations=tuple(tags),
                    training_recommended=recommended,
                    not_useful=not_useful,
                    scores={
                        "novelty": novelty,
                        "nearest_similarity": nearest_sim,
                        "uncertainty": unc,
                        "label_disagreement": dis,
                    },
                    thresholds=thresholds,
                    nearest=nearest,
                    set_id=self.set_id,
                )
            )
        return results
