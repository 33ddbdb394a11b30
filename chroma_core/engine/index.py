"""Nearest-neighbour search over one set's training vectors, behind a small interface.

Vectors are L2-normalised on the way in, so inner product is cosine similarity. ``ExactIndex`` is a brute-force
matrix product; it is the right choice for small sets and the reference that approximate indexes are measured
against.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from chroma_core.vectors import Matrix

__all__ = ["ExactIndex", "VectorIndex", "normalize", "top_k"]

_CHUNK_ELEMENTS = 16_000_000
_TINY, _HUGE = 1e-18, 1e18


def normalize(vectors: np.ndarray) -> Matrix:
    """Unit-length float32 copies of the rows; an all-zero row stays zero."""
    out = np.array(vectors, dtype=np.float32, copy=True)
    with np.errstate(over="ignore", under="ignore"):
        # np.linalg.norm's own sum (a real x.conj() * x is x * x), without its conj() copy.
        norms = np.sqrt(np.add.reduce(out * out, axis=1, keepdims=True))
    # Squared in float32, components under about 1e-19 underflow and over 1e19 overflow: such rows (accepted, they
    # have a direction) would keep their tiny length or become zeros, so two copies of one would be 1 apart. They
    # are scaled by their largest component first; ordinary rows are left exactly as they were.
    odd = ~((norms > _TINY) & (norms < _HUGE))[:, 0]
    if not odd.any():  # every norm ordinary, so none is 0: no mask needed (the same quotients)
        np.divide(out, norms, out=out)
        return out
    rows = out[odd]
    peak = np.abs(rows).max(axis=1, keepdims=True)
    np.divide(rows, peak, out=rows, where=peak > 0)
    out[odd] = rows
    norms[odd] = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


class VectorIndex(Protocol):
    dimension: int

    def __len__(self) -> int: ...

    def add(self, vectors: Matrix) -> None:
        """Append vectors (already normalised); their rows continue the index's numbering."""

    def search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, rows) for each normalised query, most similar first."""


class ExactIndex:
    """Brute-force cosine search; grows by doubling so incremental adds cost amortised O(added)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._data = np.empty((0, dimension), dtype=np.float32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> Matrix:
        return self._data[: self._n]

    def add(self, vectors: Matrix) -> None:
        need = self._n + len(vectors)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data), 1024), self.dimension), dtype=np.float32)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : need] = vectors
        self._n = need

    def search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self._n)
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        # Bound the similarity matrix to ~64 MB however many queries come at once.
        step = max(1, _CHUNK_ELEMENTS // self._n)
        if len(queries) > step:
            parts = [self._search(queries[i : i + step], k) for i in range(0, len(queries), step)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return self._search(queries, k)

    def _search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(queries @ self.vectors.T, k)


#: :func:`top_k` bounds each row's k-th largest value through the maxima of column groups: at least this many
#: groups per ``k`` (so that the bound is close) and groups of at most ``_BLOCK`` columns.
_GROUPS_PER_K = 4
_BLOCK = 64


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values of each row of ``sims`` and their columns, largest first (ties: lower column first).

    Partitioning every row (``argpartition``) costs about 10 ns a value; most values are far from the top. So the
    columns are dealt into groups (column ``j`` to group ``j % groups``), and the k-th largest group maximum bounds
    the k-th largest value from below (k groups hold a value at least that large): only the values over the bound,
    little more than ``k`` of them, are sorted. Dealt columns make the maxima an elementwise maximum of whole
    slices, a few ns a value.
    """
    q, n = sims.shape
    if q == 1:  # one query (the commonest call): flat indexing, none of take_along_axis's index building
        row = sims[0]
        cols = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
        values = row[cols]
        order = np.lexsort((cols, -values))
        return values[order][None, :], cols[order].astype(np.int64)[None, :]
    groups = max(_GROUPS_PER_K * k, -(-n // _BLOCK))
    if n <= k or n < 2 * groups:  # groups of one column would bound nothing
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), (q, n))
        top = np.take_along_axis(sims, part, axis=1)
        order = np.lexsort((part, -top), axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)
    whole = n // groups * groups
    peaks = sims[:, :whole].reshape(q, -1, groups).max(axis=1)
    if whole < n:  # the last columns join the first groups
        np.maximum(peaks[:, : n - whole], sims[:, whole:], out=peaks[:, : n - whole])
    bound = np.partition(peaks, groups - k, axis=1)[:, groups - k]
    flat = np.flatnonzero(sims >= bound[:, None])  # row by row, columns in order
    rows, cols = np.divmod(flat, n)
    counts = np.bincount(rows, minlength=q)
    # Each row's values over its bound, side by side (padded with -inf), then sorted: stable, so ties keep
    # their columns' order.
    slot = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.full((q, int(counts.max())), -np.inf, dtype=sims.dtype)
    values[rows, slot] = sims.ravel()[flat]
    where = np.zeros(values.shape, dtype=np.int64)
    where[rows, slot] = cols
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(where, order, axis=1)
