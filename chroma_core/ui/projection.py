"""A set's 2-D map, computed on the server: training and production points projected by PCA (or UMAP).

The fit (:mod:`chroma_core.ui.reducers`) uses a bounded sample (``FIT_SAMPLE`` rows) and the projection reads the
set in chunks of ``CHUNK`` rows, so memory stays bounded whatever the set's size: a million 384-d rows are never
read at once. Every stored row
gets a point: nothing is sampled away from the map. The same pass places each point in one of the set's clusters
(:class:`chroma_core.drift.where.Regions`, the clusters ``chroma.clusters`` and drift's "where" use).

The points travel as one binary body (:meth:`Projection.to_bytes`): a little-endian ``uint32`` header length, a
JSON header, padding to 4 bytes, then ``x, y`` as ``float32`` pairs, the novelty score as ``float32`` (NaN where
none) and the category as ``uint8``; then (layout 2, announced by the header's ``layout``) padding to 4 bytes, the
input's time as ``float32`` seconds after the header's ``time_origin`` (NaN for training rows) and the cluster as
``uint8`` (:data:`NO_CLUSTER` where none). Each array is in point order: the training rows first, then production.
A reader of layout 1 stops after the categories and still reads a layout-2 body.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from chroma_core.drift.where import Regions
from chroma_core.engine.answers import Answers
from chroma_core.errors import UnknownEmbeddingSetError
from chroma_core.types import SetInfo
from chroma_core.ui.reducers import reducer

__all__ = ["CATEGORIES", "CHUNK", "CLUSTERS", "FIT_SAMPLE", "NO_CLUSTER", "Projection", "project", "set_info"]

#: Point categories, in the order of their ``uint8`` codes.
CATEGORIES = ("training", "training_recommended", "not_useful", "production")
FIT_SAMPLE = 20_000
CHUNK = 50_000
#: Clusters the map is coloured by (at most: a small set gets fewer, ten points a cluster at least).
CLUSTERS = 20
#: The cluster code of a point that has none (a set too small to cluster).
NO_CLUSTER = 255
#: Fewer points than this and the map has no clusters.
MIN_CLUSTERED = 20


class _Store(Protocol):
    def get_set(self, set_id: str) -> SetInfo | None: ...
    def vectors(self, set_id: str, mode: Any, start: int = 0, stop: int | None = None) -> np.ndarray: ...
    def vectors_at(self, set_id: str, mode: Any, rows: Any) -> np.ndarray: ...
    def answers(self, set_id: str, *, since: float | None = None, until: float | None = None) -> Answers: ...
    def records_at(self, set_id: str, mode: Any, rows: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Projection:
    """Every point of a set on the plane, scaled into [-1, 1] (what WebGL plots draw without a transform)."""

    set_id: str
    training: int
    production: int
    xy: np.ndarray  # float32 (n, 2)
    novelty: np.ndarray  # float32 (n,), NaN where there is no score
    category: np.ndarray  # uint8 (n,), codes of CATEGORIES
    method: str = "pca"
    explained: tuple[float, float] = (0.0, 0.0)
    #: First and last production input's time (seconds since the epoch), or None without production inputs.
    times: tuple[float, float] | None = None
    #: float32 (n,): each input's time in seconds after ``times[0]``; NaN for training rows (None: all NaN).
    time: np.ndarray | None = None
    #: uint8 (n,): each point's cluster, :data:`NO_CLUSTER` where none (None: no clusters).
    cluster: np.ndarray | None = None
    clusters: int = 0
    cluster_method: str = "kmeans"

    def __post_init__(self) -> None:
        n = len(self.category)
        if self.time is None:
            object.__setattr__(self, "time", np.full(n, np.nan, dtype=np.float32))
        if self.cluster is None:
            object.__setattr__(self, "cluster", np.full(n, NO_CLUSTER, dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.category)

    def header(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "points": len(self),
            "training": self.training,
            "production": self.production,
            "categories": list(CATEGORIES),
            "counts": np.bincount(self.category, minlength=len(CATEGORIES)).tolist(),
            "method": self.method,
            "explained_variance": list(self.explained),
            "production_times": list(self.times) if self.times else None,
            "layout": 2,
            "time_origin": self.times[0] if self.times else None,
            "clusters": self.clusters,
            "cluster_method": self.cluster_method,
        }

    def to_bytes(self) -> bytes:
        head = json.dumps(self.header()).encode("utf-8")
        head += b" " * (-(len(head) + 4) % 4)  # the float32 arrays start 4-aligned (a Float32Array view needs it)
        return b"".join(
            (
                struct.pack("<I", len(head)),
                head,
                self.xy.astype("<f4", copy=False).tobytes(),
                self.novelty.astype("<f4", copy=False).tobytes(),
                self.category.astype(np.uint8, copy=False).tobytes(),
                b"\0" * (-len(self) % 4),
                np.asarray(self.time).astype("<f4", copy=False).tobytes(),
                np.asarray(self.cluster).astype(np.uint8, copy=False).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> Projection:
        """The inverse of :meth:`to_bytes` (for clients and tests)."""
        (length,) = struct.unpack_from("<I", body)
        head = json.loads(body[4 : 4 + length])
        n, at = head["points"], 4 + length
        xy = np.frombuffer(body, "<f4", 2 * n, at).reshape(n, 2)
        novelty = np.frombuffer(body, "<f4", n, at + 8 * n)
        category = np.frombuffer(body, np.uint8, n, at + 12 * n)
        explained = tuple(head["explained_variance"])
        times = head.get("production_times")
        time = cluster = None
        if head.get("layout", 1) >= 2:
            at += 13 * n + (-n % 4)
            time = np.frombuffer(body, "<f4", n, at)
            cluster = np.frombuffer(body, np.uint8, n, at + 4 * n)
        return cls(
            head["set_id"],
            head["training"],
            head["production"],
            xy,
            novelty,
            category,
            head["method"],
            (float(explained[0]), float(explained[1])),
            (float(times[0]), float(times[1])) if times else None,
            time,
            cluster,
            int(head.get("clusters", 0)),
            str(head.get("cluster_method", "kmeans")),
        )


def set_info(store: Any, set_id: str) -> SetInfo:
    """The set's :class:`SetInfo`, or an error naming how to list the sets."""
    info: SetInfo | None = store.get_set(set_id)
    if info is None:
        raise UnknownEmbeddingSetError(f"no embedding set {set_id!r}; list the sets with `chroma-ml sets`.")
    return info


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def _sample(store: _Store, info: SetInfo, rng: np.random.Generator) -> np.ndarray:
    """At most ``FIT_SAMPLE`` unit rows, drawn from training and production in proportion."""
    parts = []
    total = info.training + info.production
    for mode, count in (("training", info.training), ("production", info.production)):
        take = min(count, max(1, round(FIT_SAMPLE * count / total))) if count else 0
        if take:
            rows = np.sort(rng.choice(count, size=take, replace=False))
            parts.append(_unit(store.vectors_at(info.id, mode, rows)))
    return np.concatenate(parts)


def _regions(store: _Store, info: SetInfo, production_rows: np.ndarray, k: int, seed: int) -> Regions | None:
    if info.training + info.production < MIN_CLUSTERED or k < 2:
        return None
    return Regions(store, info.id, info.training, production_rows, k, np.random.default_rng(seed))


def project(
    store: _Store,
    set_id: str,
    *,
    method: str = "auto",
    seed: int = 0,
    clusters: int = CLUSTERS,
    progress: Callable[[int, int], None] | None = None,
) -> Projection:
    """Every training and production point of ``set_id`` on the plane, each with its time and its cluster (of at
    most ``clusters``).

    ``method``: ``pca`` (and ``auto``) or ``umap`` (the ``[umap]`` extra), fitted on a bounded sample and applied
    to every row in chunks (:mod:`chroma_core.ui.reducers`). ``progress(done, total)`` is called once fitted
    (``done`` 0) and after each chunk.

    >>> Projection.from_bytes(project(engine.store, set_id).to_bytes())  # doctest: +SKIP
    """
    info = set_info(store, set_id)
    n = info.training + info.production
    answers = store.answers(set_id) if info.production else None
    regions = _regions(store, info, answers.rows if answers is not None else np.empty(0, np.int64), clusters, seed)
    xy = np.zeros((n, 2), dtype=np.float32)
    cluster = np.full(n, NO_CLUSTER, dtype=np.uint8)
    plane = reducer(method)
    if n:
        plane.fit(_sample(store, info, np.random.default_rng(seed)))
        if progress is not None:
            progress(0, n)  # fitted: what remains is reading and placing every row
        at = 0
        for mode, count in (("training", info.training), ("production", info.production)):
            for start in range(0, count, CHUNK):
                chunk = _unit(store.vectors(set_id, mode, start, min(count, start + CHUNK)))
                xy[at : at + len(chunk)] = plane.transform(chunk)
                if regions is not None:
                    cluster[at : at + len(chunk)] = regions.label(chunk)
                at += len(chunk)
                if progress is not None:
                    progress(at, n)
        xy -= (xy.max(axis=0) + xy.min(axis=0)) / 2
        scale = float(np.abs(xy).max()) or 1.0
        xy *= 0.95 / scale
    category = np.zeros(n, dtype=np.uint8)
    novelty = np.full(n, np.nan, dtype=np.float32)
    when = np.full(n, np.nan, dtype=np.float32)
    times = None
    if answers is not None:
        points = info.training + answers.rows
        production = np.full(info.production, 3, dtype=np.uint8)
        production[answers.rows[answers.not_useful]] = 2
        production[answers.rows[answers.training_recommended]] = 1
        category[info.training :] = production
        novelty[points] = answers.scores[:, 0]
        if len(answers):
            times = (float(answers.times.min()), float(answers.times.max()))
            # Relative to the first input: float32 epoch seconds would round to minutes.
            when[points] = answers.times - times[0]
    return Projection(
        set_id,
        info.training,
        info.production,
        xy,
        novelty,
        category,
        plane.name,
        plane.explained,
        times,
        when,
        cluster,
        len(regions) if regions is not None else 0,
    )
