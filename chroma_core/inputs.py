"""What ``log()`` accepts, turned into rows: one embedding with one ``input_uri``, or a 2-d batch with a list.

Both sessions read their arguments here, so a batch and a single input are told apart, and mismatched lengths are
refused, in one place and with the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from chroma_core.errors import InvalidEmbeddingError
from chroma_core.records import preview_of
from chroma_core.vectors import Matrix, to_matrix

__all__ = ["Logged", "read_logged"]


class Logged(NamedTuple):
    """``log()``'s arguments as rows: ``rows[i]`` belongs to ``uris[i]``, ``inferences[i]``, ..."""

    rows: Matrix
    uris: list[str]
    inferences: list[Any]
    labels: list[Any]
    previews: list[str | None]
    batch: bool


def read_logged(input_uri: Any, embedding: Any, inferences: Any, label: Any, preview: Any) -> Logged:
    """Check and convert one ``log()`` call's arguments (a list of ``input_uri`` means a batch)."""
    batch = not isinstance(input_uri, str)
    if batch and not isinstance(input_uri, Sequence):
        _uris(input_uri, 1)  # raises the input_uri type error before any embedding error
    rows = to_matrix(embedding, batch=batch)
    n = len(rows)
    return Logged(
        rows,
        _uris(input_uri, n),
        _per_row(inferences, n, "inferences", batch),
        _per_row(label, n, "label", batch),
        [preview_of(p) for p in _per_row(preview, n, "preview", batch)],
        batch,
    )


def _uris(input_uri: Any, n: int) -> list[str]:
    if isinstance(input_uri, str):
        if n != 1:
            raise InvalidEmbeddingError(
                f"a batch of {n} embeddings needs a list of {n} input_uri values, got one string."
            )
        uris = [input_uri]
    elif isinstance(input_uri, Sequence):
        uris = list(input_uri)
        if len(uris) != n:
            raise InvalidEmbeddingError(f"got {len(uris)} input_uri values for {n} embeddings; they must match.")
    else:
        raise InvalidEmbeddingError(
            f"input_uri must be a string (or a list of strings), not {type(input_uri).__name__}."
        )
    for uri in uris:
        if not isinstance(uri, str) or not uri:
            raise InvalidEmbeddingError(f"input_uri must be a non-empty string, got {uri!r}.")
    return uris


def _per_row(value: Any, n: int, name: str, batch: bool) -> list[Any]:
    if not batch:
        return [value]
    if value is None:
        return [None] * n
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != n:
        raise InvalidEmbeddingError(f"for a batch of {n} embeddings, {name} must be a list of {n} values (or None).")
    return list(value)
