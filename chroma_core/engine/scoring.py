"""How a query embedding is judged against one set's training data.

Scores (all documented in docs/recommendations.md):

- ``novelty``: by default (``thresholds.novelty_score="knn_class_centred"``) the mean cosine distance to the k
  nearest training embeddings of the closest training label, once the training mean is taken out of every vector
  (:mod:`chroma_core.engine.centred`); without any label or predicted label in training, the same to the k nearest
  whatever their label (``"knn_centred"``). ``"knn_mean"`` is the raw mean cosine distance to the k nearest (the
  kNN score of Sun et al., 2022, averaged over the k neighbours; the default before), ``"knn_kth"`` the distance
  to the k-th one alone. High means far from anything the model saw.
- ``nearest_similarity``: cosine similarity to the nearest training embedding; near 1 means a near duplicate.
- ``uncertainty``: ``1 - (p1 - p2)`` from the class scores in ``inferences`` (top-two margin).
- ``label_disagreement``: the share of the k nearest training inputs whose label differs from the prediction.

Thresholds are calibrated per set from the training data's own leave-one-out scores: each of up to
``calibration_sample`` training embeddings is scored against all the others, and the threshold is a percentile of
those scores (95th for novelty, so about 5% of in-distribution queries are flagged). The near-duplicate distance is
relative to how close *distinct* training texts come to each other: half the 1st percentile of their leave-one-out
nearest-neighbour distances (exact copies left out), bounded to [0.005, 0.2]. Users override any of them.

Tags are consistent: a near duplicate is never also ``out_of_distribution`` (it is close to something the model
saw, whatever its neighbourhood looks like further out).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chroma_core.engine.centred import CENTRED as _CENTRED
from chroma_core.engine.centred import CentredNovelty, candidates_for
from chroma_core.engine.index import normalize
from chroma_core.engine.inferences import class_scores, label_and_uncertainty, predicted_label, uncertainty_of
from chroma_core.engine.search import Neighbours
from chroma_core.types import Neighbor, QueryRequest, QueryResult, Thresholds
from chroma_core.vectors import Matrix

__all__ = [
    "Calibration",
    "SetModel",
    "calibration_key",
    "class_scores",
    "cosine_distance",
    "predicted_label",
    "uncertainty_of",
]

# Absolute bounds on the calibrated near-duplicate distance: a sparse set must not make far inputs "duplicates",
# and a set of nothing but copies must still call exact copies duplicates.
_DUP_MIN, _DUP_MAX = 0.005, 0.2
#: A near duplicate lies at most this fraction of the way to where distinct training texts start (measured on two
#: real corpora: light edits sit well under half the distance that separates distinct texts; docs/recommendations.md).
_DUP_FRACTION = 0.5
#: Leave-one-out distances under this are exact copies inside the training set, not distinct texts.
_COPY = 1e-4
#: float32 similarities of unit vectors are exact to about 1e-6 (measured up to 4096 dimensions: under 8e-7), so two
#: exact copies can come out 1e-7 apart; at a near-duplicate threshold of 0 some copies of one input would be called
#: duplicates and others not. A distance under this is rounding, taken as 0; it is far under _DUP_MIN.
_ROUNDING = 1e-5
_DEFAULT_UNCERTAINTY = 0.5  # margin under 0.5 when training records carry no class scores to calibrate from


def calibration_key(th: Thresholds, k: int) -> str:
    """Where a calibration for ``th`` with ``k`` neighbours is kept in a store's state (per set)."""
    # "v2": the near-duplicate rule of issue 15; calibrations kept under the old key are not reused.
    return f"calibration/v2/{th.novelty_score}/{th.percentile:g}/{th.duplicate_percentile:g}/{k}/{th.min_training}"


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


def novelty_of(sims: np.ndarray, k: int, kind: str) -> np.ndarray:
    """Novelty of each row of ``sims`` (similarities to the nearest training rows, most similar first).

    Only the raw kinds: the centred ones need the training mean (:class:`~chroma_core.engine.centred.
    CentredNovelty`), so asking for one here is a bug of the caller, not a k-th distance in disguise.
    """
    if kind in _CENTRED:
        raise ValueError(f"novelty_of computes raw kNN scores only; {kind!r} needs SetModel (the training mean)")
    distances = 1.0 - sims[:, :k].astype(np.float64)
    out = distances.mean(axis=1) if kind == "knn_mean" else distances[:, k - 1]
    return np.clip(out, 0.0, 2.0)  # float32 rounding can leave a copy at -1e-7


def cosine_distance(sims: np.ndarray | float) -> np.ndarray:
    """Cosine distances from similarities of unit vectors, float32 rounding of exact copies taken back to 0."""
    distance = np.maximum(1.0 - np.asarray(sims, dtype=np.float64), 0.0)
    return np.where(distance < _ROUNDING, 0.0, distance)


def near_duplicate_distance(nn1: np.ndarray, percentile: float) -> float:
    """The calibrated near-duplicate distance from leave-one-out nearest-neighbour distances (module docstring)."""
    distinct = nn1[nn1 > _COPY]
    if not len(distinct):  # every training vector has an exact copy: only copies can be called duplicates
        return _DUP_MIN
    return float(np.clip(_DUP_FRACTION * np.percentile(distinct, percentile), _DUP_MIN, _DUP_MAX))


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
        # The labels again as small integers (-1: none), so that disagreement is counted over a whole batch at once.
        self._codes: dict[str, int] = {}
        self._label_codes = np.empty(0, dtype=np.int32)
        self.calibration_sample = calibration_sample
        self._rng = np.random.default_rng(seed)
        self._calibrations: dict[tuple[float, float, int, str], Calibration] = {}
        # One calibration at a time: a request retried after a client timeout waits for the one being computed
        # (seconds at 100k rows) instead of computing it again beside it, which made both miss the deadline.
        self._calibrating = threading.Lock()
        self._centred: CentredNovelty | None = None  # the training mean, for the centred novelty

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
        start = len(self.labels)
        keys: dict[str, str] = {}  # most labels are a few strings: their JSON key is computed once each
        for label, inf in zip(labels, inferences, strict=False):
            guessed, unc = label_and_uncertainty(inf)
            lab = label if label is not None else guessed
            self.raw_labels.append(lab)
            if isinstance(lab, str):
                key = keys.get(lab)
                if key is None:
                    key = keys[lab] = json.dumps(lab)
                self.labels.append(key)
            else:
                self.labels.append(_label_key(lab))
            self.uncertainties.append(unc)
        fresh = [-1 if key is None else self._codes.setdefault(key, len(self._codes)) for key in self.labels[start:]]
        self._label_codes = np.concatenate([self._label_codes, np.asarray(fresh, dtype=np.int32)])
        self._calibrations.clear()
        self._centred = None

    def _novelty(self, queries: Matrix, sims: np.ndarray, rows: np.ndarray, k: int, kind: str) -> np.ndarray:
        """The novelty score ``kind`` of each query from its nearest training rows (most similar first)."""
        if kind not in _CENTRED:
            return novelty_of(sims, k, kind)
        if self._centred is None:
            self._centred = CentredNovelty(self.row_vectors, len(self), every_row=True)
        if kind == "knn_centred" or not self._codes:  # _codes holds a code per label seen: none, no labels
            return self._centred.novelty(queries, sims, rows, k)  # no labels: nothing to condition on
        # One integer per training label, -1 for none (kept up to date by add()).
        return self._centred.novelty(queries, sims, rows, k, self._label_codes)

    def _wanted(self, k: int, kind: str, available: int) -> int:
        """How many nearest training rows the novelty ``kind`` needs (more for the centred re-ranking, and more
        again per label; an unlabelled set's class-centred score is the plain centred one, so it needs no more)."""
        if kind not in _CENTRED:
            return k
        return max(k, candidates_for(k, available, per_label=kind == "knn_class_centred" and bool(self._codes)))

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
        """For each row of neighbours, the share of its labelled ones whose label is not ``predicted`` (None: none
        predicted, or no neighbour labelled)."""
        if all(p is None for p in predicted) or not len(rows):
            return [None] * len(rows)
        # -2: a prediction no training row carries (every labelled neighbour disagrees); -1 marks "no label".
        pred = np.array([-1 if p is None else self._codes.get(p, -2) for p in predicted], dtype=np.int64)
        labs = self._label_codes[rows]
        labelled = labs >= 0
        counted = labelled.sum(axis=1)
        differ = ((labs != pred[:, None]) & labelled).sum(axis=1)
        share = differ / np.maximum(counted, 1)
        keep = (pred != -1) & (counted > 0)
        return [float(v) if ok else None for v, ok in zip(share.tolist(), keep.tolist(), strict=True)]

    def calibration(self, th: Thresholds) -> Calibration:
        n = len(self)
        k = min(th.k, n - 1)
        key = (th.percentile, th.duplicate_percentile, k, th.novelty_score)
        cached = self._calibrations.get(key)
        if cached is None:
            with self._calibrating:
                cached = self._calibrations.get(key)
                if cached is None:
                    cached = self._calibrations[key] = self._calibrate(th, n, k)
        return cached

    def _calibrate(self, th: Thresholds, n: int, k: int) -> Calibration:
        key = calibration_key(th, k)
        kept = self._state[0](key) if self._state is not None else None
        if kept is not None and (kept.get("revision"), kept.get("n_training")) == (self.revision, n):
            return Calibration(**{f.name: kept[f.name] for f in dataclasses.fields(Calibration)})
        m = min(n, self.calibration_sample)
        sample = np.sort(self._rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
        queries = self.row_vectors(sample)
        sims, rows = self._neighbors(queries, self._wanted(k, th.novelty_score, n - 1), exclude=sample)
        novelty = self._novelty(queries, sims, rows, k, th.novelty_score)
        sims, rows = sims[:, :k], rows[:, :k]
        nn1 = 1.0 - sims[:, 0].astype(np.float64)
        p = th.percentile
        unc = [u for u in (self.uncertainties[i] for i in sample) if u is not None]
        dis = [d for d in self._disagreement(rows, [self.labels[i] for i in sample]) if d is not None]
        cal = Calibration(
            n_training=n,
            sample=m,
            novelty=float(np.percentile(novelty, p)),
            near_duplicate=near_duplicate_distance(nn1, th.duplicate_percentile),
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
        sims, rows = self._neighbors(queries, max(self._wanted(k, th.novelty_score, n), th.neighbors))
        t_nov = th.novelty if th.novelty is not None else cal.novelty
        t_dup = th.near_duplicate if th.near_duplicate is not None else cal.near_duplicate
        t_unc = (
            th.uncertainty
            if th.uncertainty is not None
            else (cal.uncertainty if cal.uncertainty is not None else _DEFAULT_UNCERTAINTY)
        )
        t_dis = th.label_disagreement if th.label_disagreement is not None else cal.label_disagreement
        thresholds = {"novelty": t_nov, "near_duplicate": t_dup, "uncertainty": t_unc, "label_disagreement": t_dis}
        if request.inferences is None:
            uncertainties: list[float | None] = [None] * len(request)
            predicted: list[str | None] = [None] * len(request)
        else:
            uncertainties = [uncertainty_of(inf) for inf in inferences]
            predicted = [_label_key(predicted_label(inf)) for inf in inferences]
        disagreement = self._disagreement(rows[:, :k], predicted)
        # Whole columns at once; the loop below only puts each row's values into its result.
        novelties = self._novelty(queries, sims, rows, k, th.novelty_score)
        nearest_sims = sims[:, 0].astype(np.float64)
        duplicates = cosine_distance(nearest_sims) <= t_dup
        far = (novelties > t_nov) & ~duplicates
        shown = th.neighbors
        near_sims, near_rows = sims[:, :shown].tolist(), rows[:, :shown].tolist()
        uris, raw_labels, set_id = self.uris, self.raw_labels, self.set_id
        results = []
        for i, (uri, novelty, nearest_sim, duplicate, out, unc, dis) in enumerate(
            zip(
                input_uris,
                novelties.tolist(),
                nearest_sims.tolist(),
                duplicates.tolist(),
                far.tolist(),
                uncertainties,
                disagreement,
                strict=True,
            )
        ):
            tags = ["out_of_distribution"] if out else []
            if duplicate:
                tags.append("near_duplicate")
            if unc is not None and unc > t_unc:
                tags.append("uncertain")
            if dis is not None and t_dis is not None and dis > t_dis:
                tags.append("label_disagreement")
            results.append(
                QueryResult(
                    input_uri=uri,
                    recommendations=tuple(tags),
                    training_recommended=not duplicate and bool(tags),
                    not_useful=duplicate,
                    scores={
                        "novelty": novelty,
                        "nearest_similarity": nearest_sim,
                        "uncertainty": unc,
                        "label_disagreement": dis,
                    },
                    thresholds=thresholds,
                    nearest=tuple(
                        Neighbor(uris[r], s, raw_labels[r]) for s, r in zip(near_sims[i], near_rows[i], strict=True)
                    ),
                    set_id=set_id,
                )
            )
        return results
