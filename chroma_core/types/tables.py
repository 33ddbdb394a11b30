"""Tables of values as DataFrames: ``to_pandas()`` and ``to_arrow()``, with pandas or pyarrow imported only then.

A table is a value whose :meth:`Tabular.rows` are flat dicts of one shape (a selection's picks, a batch of query
results); :class:`RecordTable` is a page of a set's stored records, embeddings included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from chroma_core.errors import ChromaError
from chroma_core.vectors import Matrix

__all__ = ["RecordTable", "Tabular"]

#: The scores that get a column of their own in a table of answers.
SCORE_COLUMNS = ("novelty", "nearest_similarity", "uncertainty", "label_disagreement")


def _import(name: str, extra: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        raise ChromaError(f"this needs {name}: pip install {name} (or 'chroma-ml[{extra}]').") from None


class Tabular:
    """``to_pandas()`` / ``to_arrow()`` for a value that is a list of rows of one shape."""

    def rows(self) -> list[dict[str, Any]]:
        """The table's rows as flat dicts (one key per column)."""
        raise NotImplementedError

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``, one row per item (needs pandas)."""
        return _import("pandas", "export").DataFrame(self.rows())

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``, one row per item (needs pyarrow: the ``[export]`` extra)."""
        return _import("pyarrow", "export").Table.from_pylist(self.rows())


def answer_columns(result: Any) -> dict[str, Any]:
    """The flat columns of one answer (a :class:`~chroma_core.types.QueryResult`, or None for no answer)."""
    if result is None:
        return {"recommendation": None, "training_recommended": None, "not_useful": None, "recommendations": None}
    nearest = result.nearest[0] if result.nearest else None
    return {
        "recommendation": result.recommendation,
        "training_recommended": result.training_recommended,
        "not_useful": result.not_useful,
        "recommendations": list(result.recommendations),
        **{name: result.scores.get(name) for name in SCORE_COLUMNS},
        "nearest_input_uri": None if nearest is None else nearest.input_uri,
    }


@dataclasses.dataclass(frozen=True)
class RecordTable(Tabular):
    """Stored records of one set and mode, columns as lists (row ``i`` of ``vectors`` is ``input_uris[i]``'s).

    >>> chroma.records(embedding_set, mode="production").to_pandas()   # doctest: +SKIP
    """

    set_id: str
    mode: str
    vectors: Matrix
    ids: list[str]
    input_uris: list[str]
    previews: list[str | None]
    labels: list[Any]
    inferences: list[Any]
    times: list[float]
    results: list[Any]  # QueryResult | None per row

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"RecordTable(set_id={self.set_id[:12]!r}…, mode={self.mode!r}, records={len(self)})"

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self.ids[i],
                "input_uri": self.input_uris[i],
                "preview": self.previews[i],
                "label": self.labels[i],
                "inferences": self.inferences[i],
                "time": self.times[i],
                **answer_columns(self.results[i]),
                "embedding": self.vectors[i],
            }
            for i in range(len(self))
        ]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``; the embedding is a fixed-size list of float32 (no Python floats on the way)."""
        from chroma_core.json_text import json_text  # only here: the types themselves need no JSON writer

        pa = _import("pyarrow", "export")
        rows = self.rows()
        columns = {k: [r[k] for r in rows] for k in (rows[0] if rows else {}) if k not in ("embedding", "inferences")}
        # Inferences are any JSON a model returned: as text, so one odd record cannot break the column's type.
        columns["inferences"] = [None if v is None else json_text(v) for v in self.inferences]
        columns["label"] = [None if v is None else json_text(v) for v in self.labels]
        table = pa.Table.from_pydict(columns) if rows else pa.table({})
        flat = pa.array(np.ascontiguousarray(self.vectors, dtype=np.float32).reshape(-1))
        embedding = pa.FixedSizeListArray.from_arrays(flat, int(self.vectors.shape[1]))
        return table.append_column("embedding", embedding) if rows else table
