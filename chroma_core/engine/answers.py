"""The answer stored with a production record, as typed columns, and many of them read at once as arrays.

A :class:`~chroma_core.types.QueryResult` is kept in a store as plain columns that a database can index and
filter: ``training_recommended``, ``not_useful``, the tags as bits in :data:`~chroma_core.types.TAGS` order, the
four scores and their four thresholds (NULL for none), and the evidence (the nearest training inputs) as one JSON
text that is read only for the few records shown. :func:`answer_row` and :func:`result_of` convert between the two;
every store uses them, so every store gives back the same result it was given.

:class:`Answers` is one columnar read of a set's production answers (rows, times and the typed columns as numpy
arrays): what ``select`` ranks and what drift counts per time window, without parsing JSON row by row.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chroma_core.json_text import json_text, loads
from chroma_core.types import TAGS, Neighbor, QueryResult

__all__ = ["ANSWER_COLUMNS", "SCORES", "THRESHOLDS", "AnswerRow", "Answers", "answer_row", "result_of", "tag_bits"]

#: The scores and thresholds that have a column each, in column order.
SCORES = ("novelty", "nearest_similarity", "uncertainty", "label_disagreement")
THRESHOLDS = ("novelty", "near_duplicate", "uncertainty", "label_disagreement")
#: The answer's columns in a record, in the order of :func:`answer_row`.
ANSWER_COLUMNS = (
    "training_recommended",
    "not_useful",
    "tags",
    *(f"s_{name}" for name in SCORES),
    *(f"t_{name}" for name in THRESHOLDS),
    "evidence",
)
_BIT = {tag: 1 << i for i, tag in enumerate(TAGS)}
_ORDER = {tag: i for i, tag in enumerate(TAGS)}
_SCORE_NAMES, _THRESHOLD_NAMES = frozenset(SCORES), frozenset(THRESHOLDS)

#: ``(training_recommended, not_useful, tags, 4 scores, 4 thresholds, evidence)``; all None for no answer.
AnswerRow = tuple[Any, ...]
_NO_ANSWER: AnswerRow = (None,) * len(ANSWER_COLUMNS)


def tag_bits(tags: Sequence[str]) -> int:
    """The known tags of ``tags`` as bits in :data:`TAGS` order."""
    return sum({_BIT.get(tag, 0) for tag in tags})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


_PLAIN = frozenset({float, type(None)})


def _split(
    values: dict[str, Any], names: tuple[str, ...], known: frozenset[str]
) -> tuple[list[float | None], dict[str, Any], list[str]]:
    """The named values as numbers, what else the dict holds, and which names it lacks (so it rebuilds exactly)."""
    raw = list(map(values.get, names))
    # The usual answer, for every stored input: exactly the named keys, each a float or None (a NaN is stored as
    # NULL, so it reads back as None, as it did from JSON).
    if values.keys() == known and set(map(type, raw)) <= _PLAIN:
        return raw, {}, []
    numbers = [_number(v) for v in raw]
    extra = {k: v for k, v in values.items() if k not in known or (v is not None and _number(v) is None)}
    return numbers, extra, [name for name in names if name not in values]


def _in_order(tags: tuple[str, ...]) -> bool:
    """Whether ``tags`` are all known and in :data:`TAGS` order (so the bits alone give them back)."""
    if len(tags) < 2:
        return not tags or tags[0] in _ORDER
    order = [_ORDER.get(t, -1) for t in tags]
    return -1 not in order and order == sorted(order)


def answer_row(result: QueryResult | None) -> AnswerRow:
    """The columns that keep ``result`` (its ``input_uri`` and ``set_id`` are the record's own)."""
    if result is None:
        return _NO_ANSWER
    scores, extra_scores, absent_scores = _split(result.scores, SCORES, _SCORE_NAMES)
    thresholds, extra_thresholds, absent_thresholds = _split(result.thresholds, THRESHOLDS, _THRESHOLD_NAMES)
    # Neighbours as [input_uri, similarity, label] triples: half the text of objects, and quicker to write.
    evidence: dict[str, Any] = {"nearest": [(n.input_uri, n.similarity, n.label) for n in result.nearest]}
    # What has no column (rare: the scores of a too-small set, a tag newer than this code) rides in the evidence.
    if extra_scores or absent_scores:
        evidence["scores"], evidence["absent_scores"] = extra_scores, absent_scores
    if extra_thresholds or absent_thresholds:
        evidence["thresholds"], evidence["absent_thresholds"] = extra_thresholds, absent_thresholds
    if not _in_order(result.recommendations):
        evidence["tags"] = list(result.recommendations)
    return (
        int(result.training_recommended),
        int(result.not_useful),
        tag_bits(result.recommendations),
        *scores,
        *thresholds,
        json_text(evidence),
    )


def _values(names: tuple[str, ...], numbers: Sequence[Any], extra: dict[str, Any], absent: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(names, numbers, strict=True):
        if name not in absent:
            out[name] = None if value is None or value != value else float(value)  # NaN is "none" too
    out.update(extra)
    return out


def result_of(row: Sequence[Any], input_uri: str, set_id: str) -> QueryResult | None:
    """The result kept in ``row`` (the columns of :func:`answer_row`), or None when the record has no answer."""
    recommended, not_useful, bits = row[0], row[1], row[2]
    if bits is None:
        return None
    evidence: dict[str, Any] = loads(row[-1]) if row[-1] else {}
    n = len(SCORES)
    scores = _values(SCORES, row[3 : 3 + n], evidence.get("scores", {}), evidence.get("absent_scores", []))
    thresholds = _values(
        THRESHOLDS, row[3 + n : 3 + 2 * n], evidence.get("thresholds", {}), evidence.get("absent_thresholds", [])
    )
    tags = evidence.get("tags") or [t for t in TAGS if int(bits) & _BIT[t]]
    return QueryResult(
        input_uri=input_uri,
        recommendations=tuple(tags),
        training_recommended=bool(recommended),
        not_useful=bool(not_useful),
        scores=scores,
        thresholds=thresholds,
        nearest=tuple(Neighbor(*n) for n in evidence.get("nearest", ())),
        set_id=set_id,
    )


@dataclasses.dataclass(frozen=True)
class Answers:
    """Production answers of one set, one array per column, in row order.

    ``answered`` is False for records stored without an answer (uploaded batches, ``@recommend``'s async mode);
    their flags are False, their tags 0 and their scores NaN. ``scores`` columns follow :data:`SCORES`,
    ``thresholds`` columns :data:`THRESHOLDS`; NaN means "none".
    """

    rows: np.ndarray  # int64
    times: np.ndarray  # float64, seconds since the epoch
    answered: np.ndarray  # bool
    training_recommended: np.ndarray  # bool
    not_useful: np.ndarray  # bool
    tags: np.ndarray  # int64, bit i set for TAGS[i]
    scores: np.ndarray  # float64 (n, 4)
    thresholds: np.ndarray  # float64 (n, 4)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]]) -> Answers:
        """From ``(row, time, training_recommended, not_useful, tags, 4 scores, 4 thresholds)`` tuples."""
        n = len(SCORES)
        # SQL NULL (None) becomes NaN.
        table = np.array(rows, dtype=np.float64) if rows else np.empty((0, 5 + 2 * n), dtype=np.float64)
        tags = table[:, 4]
        answered = ~np.isnan(tags)
        return cls(
            rows=table[:, 0].astype(np.int64),
            times=table[:, 1].copy(),
            answered=answered,
            training_recommended=np.nan_to_num(table[:, 2]) > 0,
            not_useful=np.nan_to_num(table[:, 3]) > 0,
            tags=np.nan_to_num(tags).astype(np.int64),
            scores=table[:, 5 : 5 + n].copy(),
            thresholds=table[:, 5 + n : 5 + 2 * n].copy(),
        )

    def score(self, name: str) -> np.ndarray:
        return self.scores[:, SCORES.index(name)]  # type: ignore[no-any-return]

    def threshold(self, name: str) -> np.ndarray:
        return self.thresholds[:, THRESHOLDS.index(name)]  # type: ignore[no-any-return]

    def has_tag(self, tag: str) -> np.ndarray:
        """Which records carry ``tag`` (one of :data:`~chroma_core.types.TAGS`)."""
        if tag not in _BIT:
            raise ValueError(f"unknown tag {tag!r}; known: {', '.join(TAGS)}")
        return (self.tags & _BIT[tag]) != 0  # type: ignore[no-any-return]

    def tag_counts(self) -> dict[str, int]:
        """How many records carry each tag."""
        return {tag: int(self.has_tag(tag).sum()) for tag in TAGS}

    def take(self, index: np.ndarray) -> Answers:
        """The answers at ``index`` (positions or a boolean mask)."""
        return Answers(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def with_results(self, positions: Sequence[int], results: Sequence[QueryResult]) -> Answers:
        """A copy in which the records at ``positions`` carry ``results`` instead (answers given now)."""
        out = Answers(**{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)})
        if not len(positions):
            return out
        fresh = Answers.from_rows([(0, 0.0, *answer_row(r)[:-1]) for r in results])
        index = np.asarray(positions, dtype=np.int64)
        for name in ("answered", "training_recommended", "not_useful", "tags", "scores", "thresholds"):
            getattr(out, name)[index] = getattr(fresh, name)
        return out
