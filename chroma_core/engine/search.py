"""Nearest training rows of one set: the store's index where it reaches, exact search over the rest.

A store may index a set's first ``covered`` training rows (``Store.nearest``; the SQLite store builds its index in
the background). :class:`Neighbours` keeps in memory only the normalised vectors of the rows after those, searches
them exactly, and re-ranks the store's candidates with their exact float32 vectors, so a reduced-precision index
never changes a score. While no index is ready, every row is searched exactly; as the index catches up, the exact
part shrinks to the rows it does not cover yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from chroma_core.engine.index import ExactIndex, normalize
from chroma_core.engine.store import Candidates
from chroma_core.vectors import Matrix

__all__ = ["Neighbours"]

#: How often to ask a store that had no index for a set whether it has one now.
_PROBE_EVERY_S = 1.0
#: Queries whose candidates' vectors are gathered at once in a batch's re-rank (see _candidate_similarities): a few
#: MB, so that the einsum reads them back from cache (1,000 queries x 400 candidates: 123 ms CPU, 196 ms by 64).
_GATHER = 8


def _repeats(rows: np.ndarray) -> np.ndarray | None:
    """True where a row number already appeared earlier in the same line of ``rows`` (all lines at once); None when
    no line repeats a row (the usual case: then nothing needs marking)."""
    ordered = np.sort(rows, axis=1)
    if not (ordered[:, 1:] == ordered[:, :-1]).any():
        return None
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    again = np.zeros(rows.shape, dtype=bool)
    again[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = np.empty_like(again)
    np.put_along_axis(out, order, again, axis=1)
    return out


class Neighbours:
    """Cosine nearest training rows, rows numbered like the store's (see the module docstring).

    ``candidates(queries, k)`` is the store's ``nearest`` for this set, ``rows(rows)`` its ``vectors_at`` and
    ``vectors(start, stop)`` its ``vectors``; without them every row is searched exactly. ``start``: how many
    leading rows the store's index covers already (their vectors are never loaded).
    """

    def __init__(
        self,
        dimension: int,
        *,
        candidates: Callable[[Matrix, int], Candidates | None] | None = None,
        rows: Callable[[np.ndarray], Matrix] | None = None,
        vectors: Callable[[int, int], Matrix] | None = None,
        start: int = 0,
    ) -> None:
        self.dimension = dimension
        self._candidates = candidates
        self._rows = rows
        self._vectors = vectors
        self._state = (start, ExactIndex(dimension))  # (first row searched exactly, its index): swapped as one
        self._lock = threading.Lock()
        self._next_probe = 0.0 if start else time.monotonic() + _PROBE_EVERY_S

    def __len__(self) -> int:
        start, exact = self._state
        return start + len(exact)

    @property
    def start(self) -> int:
        """Rows before this one are reached through the store's index; the rest are searched exactly."""
        return self._state[0]

    def add(self, vectors: Matrix) -> None:
        """Append normalised rows (they continue the numbering)."""
        with self._lock:
            self._state[1].add(vectors)

    def _cover(self, covered: int) -> None:
        """Let the store's index serve the first ``covered`` rows; search exactly only the rows after them."""
        with self._lock:
            start, exact = self._state
            if covered == start:
                return
            fresh = ExactIndex(self.dimension)
            if covered > start:  # the index caught up
                fresh.add(exact.vectors[covered - start :])
            else:  # the index was dropped (e.g. its set was compacted): those rows are ours again
                assert self._vectors is not None
                fresh.add(normalize(self._vectors(covered, start)))
                fresh.add(exact.vectors)
            self._state = (covered, fresh)

    def _ask(self, queries: Matrix, k: int) -> Candidates | None:
        if self._candidates is None or (not self.start and time.monotonic() < self._next_probe):
            return None
        found = self._candidates(queries, k)
        if found is None:
            self._next_probe = time.monotonic() + _PROBE_EVERY_S
        self._cover(min(found.covered, len(self)) if found is not None else 0)
        return found

    def row_vectors(self, rows: np.ndarray) -> Matrix:
        """Normalised float32 vectors of ``rows`` (exact, whatever the index's precision)."""
        start, exact = self._state
        rows = np.asarray(rows, dtype=np.int64)
        if not start:
            mine: Matrix = exact.vectors[rows]
            return mine
        ours = rows >= start
        if len(rows) and not ours.any():  # all reached through the store's index (a query's candidates)
            assert self._rows is not None
            theirs: Matrix = normalize(self._rows(rows))
            return theirs
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        out[ours] = exact.vectors[rows[ours] - start]
        if not ours.all():
            assert self._rows is not None
            out[~ours] = normalize(self._rows(rows[~ours]))
        return out

    def _candidate_similarities(self, queries: Matrix, cand: np.ndarray) -> np.ndarray:
        """Exact similarity of each query to each of its candidates (a (queries, candidates) table of rows).

        The queries of a batch share many candidates (near queries have near neighbours): each distinct row is read
        from the store and normalised once, in row order, which also reads the vector file front to back. The
        gathered (queries, candidates, dim) vectors are built :data:`_GATHER` queries at a time: whole, a batch of
        1,000 queries over 200 candidates each would be 300 MB of fresh memory, and faulting it in cost 1.6 s.
        """
        flat = cand.ravel()
        if len(cand) == 1:
            alone: np.ndarray = np.einsum("qd,qkd->qk", queries, self.row_vectors(flat).reshape(1, cand.shape[1], -1))
            return alone
        if 8 * len(flat) < len(self):
            distinct, where = np.unique(flat, return_inverse=True)
        else:  # np.unique's answer without its sort (28 ms of 400,000 candidates): rows are below the set's size
            seen = np.zeros(len(self), dtype=bool)
            seen[flat] = True
            distinct = np.flatnonzero(seen)
            where = (np.cumsum(seen) - 1)[flat]
        where = where.reshape(cand.shape)
        vectors = self.row_vectors(distinct)
        out = np.empty(cand.shape, dtype=np.result_type(queries, vectors))
        for s in range(0, len(cand), _GATHER):  # each element is the same einsum as a lone query's: bit-identical
            out[s : s + _GATHER] = np.einsum("qd,qkd->qk", queries[s : s + _GATHER], vectors[where[s : s + _GATHER]])
        return out

    def search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (similarities, rows) for each normalised query, most similar first."""
        found = self._ask(queries, min(len(self), max(2 * k, k + 10)))
        start, exact = self._state
        sims, rows = exact.search(queries, k)
        if not start:
            return sims, rows
        rows = rows + start
        if found is None or not found.rows.size:
            return sims, rows
        # The store's candidates, re-ranked with the exact vectors, then merged with the exact search of the rest.
        cand = found.rows
        valid = (cand >= 0) & (cand < start)
        cand = np.where(valid, cand, 0)
        if found.vectors is not None:  # sent with the rows: no second read
            vecs = normalize(found.vectors.reshape(-1, self.dimension)).reshape(len(queries), cand.shape[1], -1)
            cand_sims = np.einsum("qd,qkd->qk", queries, vecs)
        else:
            cand_sims = self._candidate_similarities(queries, cand)
        if not valid.all():
            cand_sims[~valid] = -np.inf
        again = _repeats(cand)
        if again is not None:
            cand_sims[again] = -np.inf  # a candidate listed twice (padding) must not take two places
        if sims.shape[1]:
            cand_sims, cand = np.concatenate([cand_sims, sims], axis=1), np.concatenate([cand, rows], axis=1)
        if len(queries) == 1:  # one query: flat indexing, none of take_along_axis's index building
            first = np.argsort(-cand_sims[0], kind="stable")[:k]
            return cand_sims[0][first][None, :], cand[0][first][None, :]
        order = np.argsort(-cand_sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cand_sims, order, axis=1), np.take_along_axis(cand, order, axis=1)
