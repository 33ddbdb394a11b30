"""``TrainingSession``, ``QuerySession`` and the module-level ``log()``: the seed's public API.

A training session buffers embeddings in memory (nothing is stored until :meth:`TrainingSession.save`), then
writes a batch file atomically if ``bufferlocal`` was called, and uploads the batch to the engine. A query session
answers each ``log()`` with a :class:`~chroma_core.results.QueryResult`.
"""

from chroma_core.sessions.base import SessionOptions
from chroma_core.sessions.oneshot import log
from chroma_core.sessions.query import QuerySession
from chroma_core.sessions.training import SavedBatch, TrainingSession

__all__ = ["QuerySession", "SavedBatch", "SessionOptions", "TrainingSession", "log"]
