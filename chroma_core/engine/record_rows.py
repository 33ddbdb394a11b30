"""A stored record rebuilt from a database row, the same for every SQL store.

The row is ``(row, id, input_uri, inferences, label, time, preview)``, followed, for production records, by the
answer's columns (:data:`~chroma_core.engine.answers.ANSWER_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chroma_core.engine.answers import result_of
from chroma_core.engine.store import StoredRecord
from chroma_core.json_text import loads

__all__ = ["stored_record"]


def stored_record(rec: Sequence[Any], set_id: str) -> StoredRecord:
    """The :class:`StoredRecord` of one row (inferences and labels are JSON text; no answer columns: no result)."""
    return StoredRecord(
        rec[0],
        rec[1],
        rec[2],
        None if rec[3] is None else loads(rec[3]),
        None if rec[4] is None else loads(rec[4]),
        rec[5],
        None if len(rec) < 10 or rec[9] is None else result_of(rec[7:], rec[2], set_id),
        rec[6],
    )
