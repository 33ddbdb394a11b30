"""A training session's logged rows, held in memory until ``save()``: float32 blocks of a fixed size per set.

Appending a row copies it into the current block (callers' loops reuse their buffers) with no per-row array. A
full block is never copied: the next rows go to a new one, and ``take()`` joins them once, into an array of exactly
the rows logged. A matrix that doubled instead copied every row again at each doubling, into fresh pages. Blocks
are 16 MiB, past numpy's 4 MiB threshold for asking the kernel for huge pages, so filling one takes a few page
faults rather than one per 4 KiB; after ``take()`` the first block stays with the buffer, already faulted in, for
the next rows (a loop that logs and saves in turn never faults it again).

Each row's metadata (uri, inferences, label, preview, time) is one tuple in one list, appended under the same
lock as the row, so rows and their metadata never mis-pair when threads share a session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import BatchHeader, Mode, Records, new_batch
from chroma_core.vectors import check_dimension

__all__ = ["BLOCK_BYTES", "Buffer"]

BLOCK_BYTES = 16 << 20
_now = time.time

#: One row's metadata: (input_uri, inferences, label, preview, time).
Meta = tuple[str, Any, Any, "str | None", float]


class Buffer:
    """Rows of one embedding set, appended into fixed-size float32 blocks (no per-row arrays, no regrowth copy).

    ``n`` rows are buffered; row ``i < base`` lies in ``blocks``, the rest in ``block[i - base]``, and ``capacity``
    is ``base + len(block)``. ``meta[i]`` is row ``i``'s metadata.
    """

    __slots__ = (
        "base",
        "block",
        "block_rows",
        "blocks",
        "capacity",
        "dim",
        "embedding_set",
        "lock",
        "meta",
        "n",
        "shape",
        "spare",
    )

    def __init__(self, embedding_set: EmbeddingSet, dim: int | None) -> None:
        self.embedding_set = embedding_set
        self.dim = dim
        # None until the dimension is known, so that no array's shape matches it on log()'s fast path.
        self.shape: tuple[int] | None = None if dim is None else (dim,)
        self.blocks: list[np.ndarray] = []
        self.block = np.empty((0, 0), dtype=np.float32)
        self.block_rows = 0
        self.base = 0
        self.capacity = 0
        self.n = 0
        self.meta: list[Meta] = []
        self.spare: np.ndarray | None = None
        self.lock = threading.Lock()

    def _grow(self, need: int) -> None:
        """Start a new block (at ``capacity``, which must equal ``n``) with room for at least ``need`` rows."""
        assert self.dim is not None
        if not self.block_rows:
            self.block_rows = max(1, BLOCK_BYTES // (4 * self.dim))
        spare = self.spare
        if spare is not None and need <= len(spare):
            block, self.spare = spare, None
        else:
            # A batch larger than a block gets one block of its own size: copied once, never split.
            block = np.empty((max(need, self.block_rows), self.dim), dtype=np.float32)
        if len(self.block):
            self.blocks.append(self.block)
        self.block = block
        self.base = self.capacity
        self.capacity += len(block)

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
            n, k = self.n, len(rows)
            room = min(self.capacity - n, k)
            if room:
                at = n - self.base
                self.block[at : at + room] = rows[:room]
            if k > room:
                self._grow(k - room)
                self.block[: k - room] = rows[room:]
            self.meta.extend(zip(uris, infs, labels, previews, repeat(_now(), k), strict=True))
            self.n = n + k

    @property
    def matrix(self) -> np.ndarray:
        """The rows buffered so far, as one ``(n, dim)`` array (a copy when they span several blocks)."""
        with self.lock:
            return self._rows()

    def _rows(self) -> np.ndarray:
        tail = self.block[: self.n - self.base]
        if not self.blocks:
            return tail
        return np.concatenate([*self.blocks, tail])

    @property
    def uris(self) -> list[str]:
        return [m[0] for m in self.meta]

    @property
    def inferences(self) -> list[Any]:
        return [m[1] for m in self.meta]

    @property
    def labels(self) -> list[Any]:
        return [m[2] for m in self.meta]

    @property
    def previews(self) -> list[str | None]:
        return [m[3] for m in self.meta]

    def take(self, mode: Mode) -> tuple[BatchHeader, Records]:
        """Detach the buffered rows as a new batch (their own array) and reset the buffer, keeping one block."""
        with self.lock:
            assert self.dim is not None
            vectors = self._rows()
            # The first block is kept for the next rows when it has the standard size; a batch's own larger
            # block is not, so a lone one is handed over as it is (it holds exactly that batch), not copied.
            first = self.blocks[0] if self.blocks else self.block
            keep = first if self.block_rows and len(first) == self.block_rows else None
            if keep is not None and not self.blocks:
                vectors = vectors.copy()
            uris, infs, labels, previews, times = list(zip(*self.meta, strict=True)) or [()] * 5
            batch = new_batch(
                self.embedding_set,
                mode,
                vectors,
                uris,
                inferences=infs,
                labels=labels,
                times=times,
                previews=previews,
            )
            self.spare = keep
            self.blocks = []
            self.block = np.empty((0, self.dim), dtype=np.float32)
            self.base = self.capacity = self.n = 0
            self.meta = []
            return batch
