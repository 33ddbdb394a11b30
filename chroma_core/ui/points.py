"""What the page shows about single points: an input's uri, preview, answer and nearest training inputs.

A point is addressed by its index in the map (:mod:`chroma_core.ui.projection`): training rows first, then the
production rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_core.errors import ChromaError
from chroma_core.types import SetInfo
from chroma_core.ui.projection import set_info

__all__ = ["EXACT_LIMIT", "MAX_EXPORT", "describe", "export_rows", "locate"]

#: Training sets up to this size are searched exactly when the index does not cover them (yet).
EXACT_LIMIT = 50_000
#: Points one export may list (a larger selection is refused with a message, never truncated silently).
MAX_EXPORT = 100_000


class PointOutOfRangeError(ChromaError, LookupError):
    """A point index outside the set's map."""


def locate(info: SetInfo, index: int) -> tuple[str, int]:
    """The (mode, row) of map point ``index``."""
    if not 0 <= index < info.training + info.production:
        raise PointOutOfRangeError(
            f"point {index} is not on the map of set {info.id!r}, which has {info.training + info.production} "
            "points; reload the map (records may have been deleted)."
        )
    return ("training", index) if index < info.training else ("production", index - info.training)


def _nearest_training(store: Any, info: SetInfo, vector: np.ndarray, k: int, skip: int | None) -> list[dict[str, Any]]:
    unit = vector / (float(np.linalg.norm(vector)) or 1.0)
    candidates = store.nearest(info.id, unit[None, :].astype(np.float32), k + 1)
    rows: np.ndarray
    if candidates is not None and candidates.covered >= info.training:
        rows = candidates.rows[0][candidates.rows[0] >= 0]
    elif info.training <= EXACT_LIMIT:
        rows = np.arange(info.training)
    else:
        return []  # the index is still being built over a large set: no answer rather than a slow scan
    if skip is not None:
        rows = rows[rows != skip]
    if not len(rows):
        return []
    found = store.vectors_at(info.id, "training", rows)
    found = found / np.maximum(np.linalg.norm(found, axis=1, keepdims=True), 1e-12)
    similarity = found @ unit
    best = np.argsort(-similarity)[:k]
    records = store.records_at(info.id, "training", rows[best])
    return [
        {"input_uri": r.input_uri, "preview": r.preview, "label": r.label, "similarity": float(similarity[b])}
        for r, b in zip(records, best, strict=True)
    ]


def describe(store: Any, set_id: str, index: int, *, k: int = 5) -> dict[str, Any]:
    """Point ``index``: its record, Chroma's answer (production) and its ``k`` nearest training inputs."""
    info = set_info(store, set_id)
    mode, row = locate(info, index)
    (record,) = store.records_at(set_id, mode, [row])
    vector = np.asarray(store.vectors_at(set_id, mode, [row])[0], dtype=np.float32)
    return {
        "index": index,
        "mode": mode,
        "row": row,
        "id": record.id,
        "input_uri": record.input_uri,
        "preview": record.preview,
        "label": record.label,
        "time": record.time,
        "answer": record.result.to_dict() if record.result is not None else None,
        "nearest": _nearest_training(store, info, vector, k, row if mode == "training" else None),
    }


def export_rows(store: Any, set_id: str, indices: Sequence[int]) -> list[dict[str, Any]]:
    """The selected points as rows (index, mode, id, input_uri, preview, label, answer word) for an export."""
    info = set_info(store, set_id)
    if len(indices) > MAX_EXPORT:
        raise PointOutOfRangeError(f"{len(indices)} points selected; export at most {MAX_EXPORT} at once.")
    picked = sorted({int(i) for i in indices})
    where = [locate(info, i) for i in picked]
    out: list[dict[str, Any]] = []
    for mode in ("training", "production"):
        mine = [(i, row) for i, (m, row) in zip(picked, where, strict=True) if m == mode]
        records = store.records_at(set_id, mode, [row for _, row in mine]) if mine else []
        for (i, _), r in zip(mine, records, strict=True):
            out.append(
                {
                    "index": i,
                    "mode": mode,
                    "id": r.id,
                    "input_uri": r.input_uri,
                    "preview": r.preview,
                    "label": r.label,
                    "answer": r.result.recommendation if r.result is not None else None,
                }
            )
    return out
