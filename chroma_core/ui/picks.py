"""A lasso's production inputs as a :class:`~chroma_core.types.Selection`: what ``chroma select`` answers.

The page's "send to label next" turns the points a user drew a lasso around into the same value ``chroma select``
returns (and ``chroma select --json`` prints), so the file the page downloads reads back with
``Selection.from_dict`` and feeds whatever a team does with a selection. The user chose these inputs, so none is
left out: they are ranked by the priority ``select`` ranks by (how far the strongest signal of the answer exceeds
its threshold), and inputs stored without an answer are judged now, as ``select`` judges them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from chroma_core.engine.selection import priority
from chroma_core.types import Pick, QueryRequest, QueryResult, Selection
from chroma_core.ui.points import MAX_EXPORT, PointOutOfRangeError, locate
from chroma_core.ui.projection import set_info

__all__ = ["lasso_selection"]

Score = Callable[[QueryRequest], list[QueryResult]]


def lasso_selection(store: Any, score: Score, set_id: str, indices: Sequence[int]) -> tuple[Selection, list[int]]:
    """The production inputs among map points ``indices`` as a :class:`Selection`, highest priority first, and
    each pick's map point index (in pick order).

    Training points in the lasso are not candidates for labelling and are left out (``considered`` counts the
    production inputs only); ``score`` answers the inputs stored without an answer (the engine's ``query``).
    """
    info = set_info(store, set_id)
    if len(indices) > MAX_EXPORT:
        raise PointOutOfRangeError(f"{len(indices)} points selected; send at most {MAX_EXPORT} at once.")
    rows = sorted({row for mode, row in (locate(info, int(i)) for i in indices) if mode == "production"})
    records = list(store.records_at(set_id, "production", rows)) if rows else []
    missing = [k for k, r in enumerate(records) if r.result is None]
    fresh: dict[int, QueryResult] = {}
    if missing:
        vectors = store.vectors_at(set_id, "production", [rows[k] for k in missing])
        uris = tuple(records[k].input_uri for k in missing)
        inferences = tuple(records[k].inferences for k in missing)
        fresh = dict(zip(missing, score(QueryRequest(set_id, vectors, uris, inferences)), strict=True))
    results: list[QueryResult] = []
    for k, r in enumerate(records):
        result = fresh.get(k, r.result)
        assert result is not None  # every input without a stored answer was just answered
        results.append(result)
    ranked = sorted(range(len(records)), key=lambda k: (-priority(results[k].to_dict()), rows[k]))
    picks = tuple(
        Pick(
            rank,
            records[k].id,
            records[k].input_uri,
            priority(results[k].to_dict()),
            dataclasses.replace(results[k], input_uri=records[k].input_uri, set_id=set_id),
            records[k].inferences,
            records[k].time,
            None,
            records[k].preview,
        )
        for rank, k in enumerate(ranked, 1)
    )
    recommended = sum(bool(r.training_recommended) for r in results)
    selection = Selection(set_id, picks, len(records), recommended, 0, len(fresh))
    return selection, [info.training + rows[k] for k in ranked]
