"""A training session's logged rows, held in memory until ``save()``: one growing float32 matrix per set.

Appending a row copies it into the matrix (callers' loops reuse their buffers) with no per-row array; the lists of
uris, inferences, labels and previews grow beside it, under one lock, so rows and their metadata never mis-pair
when threads share a session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Mode, Records, new_batch
from chroma_core.vectors import check_dimension

__all__ = ["Buffer"]

_now = time.time


class Buffer:
    """Rows of one embedding set, appended into a growing float32 matrix (no per-row arrays)."""

    __slots__ = (
        "capacity",
        "dim",
        "embedding_set",
        "inferences",
        "labels",
        "lock",
        "matrix",
        "n",
        "previews",
        "shape",
        "times",
        "uris",
    )

    def __init__(self, embedding_set: EmbeddingSet, dim: int | None) -> None:
        self.embedding_set = embedding_set
        self.dim = dim
        self.shape: tuple[int, ...] = () if dim is None else (dim,)
        self.matrix = np.empty((0, 0), dtype=np.float32)
        self.capacity = 0
        self.n = 0
        self.uris: list[str] = []
        self.inferences: list[Any] = []
        self.labels: list[Any] = []
        self.previews: list[str | None] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def _grow(self, need: int) -> None:
        assert self.dim is not None
        grown = np.empty((max(need, 2 * len(self.matrix), 256), self.dim), dtype=np.float32)
        if self.n:
            grown[: self.n] = self.matrix[: self.n]
        self.matrix = grown
        self.capacity = len(grown)

    def append_rows(
        self,
        rows: np.ndarray,
        uris: Sequence[str],
        infs: Sequence[Any],
        labels: Sequence[Any],
        previews: Sequence[str | None],
    ) -> None:
        with self.lock:
            if self.dim is None:
                self.dim = rows.shape[1]
                self.shape = (self.dim,)
            check_dimension(rows.shape[1], self.dim, "embedding")
            need = self.n + len(rows)
            if need > self.capacity:
                self._grow(need)
            self.matrix[self.n : need] = rows
            self.n = need
            self.uris.extend(uris)
            self.inferences.extend(infs)
            self.labels.extend(labels)
            self.previews.extend(previews)
            t = _now()
            self.times.extend([t] * len(rows))

    def take(self, mode: Mode) -> tuple[BatchHeader, Records]:
        """Detach the buffered rows as a new batch and reset the buffer."""
        with self.lock:
            assert self.dim is not None
            batch = new_batch(
                self.embedding_set,
                mode,
                self.matrix[: self.n],
                self.uris,
                inferences=self.inferences,
                labels=self.labels,
                times=self.times,
                previews=self.previews,
            )
            self.matrix = np.empty((0, self.dim), dtype=np.float32)
            self.capacity = 0
            self.n = 0
            self.uris, self.inferences, self.labels, self.previews, self.times = [], [], [], [], []
            return batch
