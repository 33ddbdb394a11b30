"""Row numbers over the PostgreSQL store's slots: a small delete leaves holes instead of renumbering every row after.

Each record of a partition (a set's training or production records) sits in a *slot*, the ``row`` column, which a
delete never changes. The partition's deleted slots are its *holes*, kept sorted in the set's row
(``chroma_sets.training_holes`` / ``production_holes``); new records take the slots after every one used. A
record's row number, the one the Store contract speaks of (0, 1, 2, ... in the order stored, without gaps), is
its slot less the holes below it. Without holes, rows and slots are the same.

Why: PostgreSQL writes a new version of every record whose ``row`` changes, and files it in every index of the
table, the set's HNSW index included (one insert cost 2-10 ms here). Renumbering the rows after a deleted one made
a delete of one early record of a 50k set re-file up to 50k rows. With holes, a delete of a few records writes
only those records and the set's row. Once a partition has more than ``holes_at_most`` holes, the delete that
passes that bound renumbers every slot after the first hole (see :mod:`~chroma_core.engine.postgres_delete`),
and the partition has none again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["HOLES_AT_MOST", "NONE", "holes_of", "rows_of", "slots_of"]

#: A partition's holes at most (each query of the set reads its training holes, 8 bytes each).
HOLES_AT_MOST = 1024

NONE = np.empty(0, dtype=np.int64)


def holes_of(value: Sequence[int] | None) -> np.ndarray:
    """The holes as read from the database (a ``bigint[]``), sorted."""
    return NONE if not value else np.asarray(value, dtype=np.int64)


def rows_of(slots: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The row numbers of live ``slots``: each less the holes below it."""
    slots = np.asarray(slots, dtype=np.int64)
    return slots if not len(holes) else slots - np.searchsorted(holes, slots)


def slots_of(rows: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The slots of ``rows`` (row ``n``, the partition's count, maps to the slot after the last: a range's end).

    Hole ``i`` has ``holes[i] - i`` live rows below it; row ``r`` lies past every hole with at most ``r`` of them.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(holes):
        return rows
    return rows + np.searchsorted(holes - np.arange(len(holes)), rows, side="right")


def slot_of(row: int, holes: np.ndarray) -> int:
    """:func:`slots_of` for one row."""
    return int(slots_of(np.asarray([row]), holes)[0])
