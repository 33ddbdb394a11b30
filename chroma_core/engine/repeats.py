"""Which records of a chunk are new, exact repeats, or conflicts (the Store contract), the same for every store.

A record whose id is already stored, or came earlier in the batch, is compared with the first record of its id:
the same vector and ``input_uri`` make it a repeat (skipped silently: a retried upload), anything else a
conflict (not stored either, but named to the caller).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chroma_core.logs import logger
from chroma_core.records import BatchHeader, Records

__all__ = ["note_conflicts", "same_record", "sort_repeats"]


def same_record(records: Records, i: int, j: int) -> bool:
    """Whether records ``i`` and ``j`` of one chunk have the same ``input_uri`` and the same vector."""
    return records.input_uris[i] == records.input_uris[j] and np.array_equal(records.vectors[i], records.vectors[j])


def sort_repeats(records: Records, stored: Callable[[str, int], bool | None]) -> tuple[list[int], list[str], int]:
    """(indexes of the records to store, conflicting ids in order, exact repeats) of one chunk.

    ``stored(id, i)`` is None when no record of ``id`` is stored yet, else whether record ``i`` of the chunk is the
    same as the stored one.
    """
    keep: list[int] = []
    conflicts: list[str] = []
    repeats = 0
    first: dict[str, int] = {}
    for i, rid in enumerate(records.ids):
        same = stored(rid, i)
        if same is None:
            j = first.get(rid)
            if j is None:
                first[rid] = i
                keep.append(i)
                continue
            same = same_record(records, j, i)
        if same:
            repeats += 1
        else:
            conflicts.append(rid)
    return keep, conflicts, repeats


def note_conflicts(header: BatchHeader, conflicts: tuple[str, ...]) -> None:
    """Log a batch's conflicts (the caller learns of them from its answer; the operator from this line)."""
    if conflicts:
        logger.warning(
            "batch %s of set %s: %d record(s) not stored, their id is stored with another vector or input_uri "
            "(first: %r)",
            header.batch_id,
            header.set_id[:12],
            len(conflicts),
            conflicts[0],
        )
