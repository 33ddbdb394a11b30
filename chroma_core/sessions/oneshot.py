"""The seed's module-level ``chroma.log()``: one call, no session kept."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chroma_core.sessions.base import SetLike
from chroma_core.sessions.query import QuerySession
from chroma_core.sessions.training import TrainingSession
from chroma_core.types import QueryResult

if TYPE_CHECKING:
    pass


__all__ = ["log"]


def log(
    *,
    input_uri: str | Sequence[str],
    embedding: Any,
    embedding_set: SetLike,
    inferences: Any = None,
    training_mode: bool = True,
    label: Any = None,
    preview: str | Sequence[str | None] | None = None,
    chroma_config: str | os.PathLike[str] | None = None,
    chroma_json: str | None = None,
    chroma_server_url: str | None = None,
    api_key: str | None = None,
    persist_directory: str | os.PathLike[str] | None = None,
) -> QueryResult | list[QueryResult] | None:
    """Log without a session: in training mode the embedding is stored at once (a one-call batch); otherwise
    the recommendation is returned. Prefer sessions for volume: they batch, and hold no global state.
    """
    kwargs: dict[str, Any] = dict(
        chroma_config=chroma_config,
        chroma_json=chroma_json,
        chroma_server_url=chroma_server_url,
        api_key=api_key,
        persist_directory=persist_directory,
    )
    if training_mode:
        trainer = TrainingSession(embedding_set, **kwargs)
        trainer.log(input_uri, embedding, inferences, label=label, preview=preview)
        trainer.save()
        return None
    with QuerySession(embedding_set, **kwargs) as querier:
        result: QueryResult | list[QueryResult] = querier.log(input_uri, embedding, inferences, preview=preview)
    return result
