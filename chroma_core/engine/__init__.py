"""Storage of embedding sets, the vector index and the recommendation scoring."""

from chroma_core.engine.answers import Answers
from chroma_core.engine.engine import Engine, open_engine
from chroma_core.engine.index import ExactIndex, VectorIndex
from chroma_core.engine.sqlite_store import SQLiteStore
from chroma_core.engine.store import Candidates, DeleteReport, PutResult, Store, StoredRecord

__all__ = [
    "Answers",
    "Candidates",
    "DeleteReport",
    "Engine",
    "ExactIndex",
    "PutResult",
    "SQLiteStore",
    "Store",
    "StoredRecord",
    "VectorIndex",
    "open_engine",
]
