"""Near duplicates of a set's training records: among themselves, in its production inputs, in another set.

Two inputs are near duplicates when the cosine distance between their embeddings is at most the threshold (by
default the set's calibrated ``near_duplicate`` distance, the one queries are tagged with). Groups inside the
training data are the connected components of the pairs found among each record's :data:`NEIGHBOURS` nearest
training records, so a chain of near copies is one group. Production inputs and another set's training records
(train/test leakage) are each compared with their nearest training record. Exact copies (an input and a positive
multiple of it) are at distance 0, so a threshold of 0 finds exactly them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from chroma_core.engine.index import normalize
from chroma_core.engine.scoring import SetModel, cosine_distance
from chroma_core.types.duplicates import Copy, DuplicateGroup
from chroma_core.vectors import Matrix

__all__ = ["NEIGHBOURS", "chunked", "copies_of", "training_groups"]

#: Training neighbours looked at per training record when grouping.
NEIGHBOURS = 32
_CHUNK = 2048


def training_groups(model: SetModel, threshold: float) -> list[DuplicateGroup]:
    """Groups of two or more training records linked by near-duplicate pairs, largest first."""
    n = len(model)
    if n < 2:
        return []
    k = min(n, NEIGHBOURS + 1)
    parent = np.arange(n)
    worst = np.zeros(n)
    for start in range(0, n, _CHUNK):
        rows = np.arange(start, min(n, start + _CHUNK))
        sims, found = model.search.search(model.row_vectors(rows), k)
        distance = cosine_distance(sims)
        near = (distance <= threshold) & (found != rows[:, None]) & (found >= 0)
        for i, j, d in zip(np.broadcast_to(rows[:, None], near.shape)[near], found[near], distance[near], strict=True):
            a, b = _find(parent, int(i)), _find(parent, int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
            worst[i] = max(worst[i], d)
            worst[j] = max(worst[j], d)
    root = np.array([_find(parent, i) for i in range(n)])
    groups = []
    for r in np.unique(root):
        members = np.flatnonzero(root == r)
        if len(members) > 1:
            groups.append(
                DuplicateGroup(
                    tuple(model.uris[m] for m in members), tuple(int(m) for m in members), float(worst[members].max())
                )
            )
    groups.sort(key=lambda g: (-len(g.rows), g.rows[0]))
    return groups


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = int(parent[i])
    return i


def copies_of(
    model: SetModel,
    chunks: Iterator[tuple[int, Matrix]],
    uris_at: Callable[[np.ndarray], list[str]],
    threshold: float,
) -> list[Copy]:
    """The rows of ``chunks`` (``(first row, vectors)``) within ``threshold`` of their nearest training record."""
    out: list[Copy] = []
    if not len(model):
        return out
    for start, vectors in chunks:
        if not len(vectors):
            continue
        sims, found = model.search.search(normalize(vectors), 1)
        distance = cosine_distance(sims[:, 0])
        hits = np.flatnonzero(distance <= threshold)
        if not len(hits):
            continue
        uris = uris_at(hits + start)
        for h, uri in zip(hits, uris, strict=True):
            t = int(found[h, 0])
            out.append(Copy(uri, int(start + h), model.uris[t], t, float(distance[h])))
    return out


def chunked(read: Callable[[int, int], Matrix], count: int) -> Iterator[tuple[int, Matrix]]:
    """``(start, read(start, stop))`` over ``count`` rows in chunks."""
    for start in range(0, count, _CHUNK):
        yield start, read(start, min(count, start + _CHUNK))
