"""Storage of embedding sets, the vector index and the recommendation scoring."""

from chroma_core.engine.engine import Engine, open_engine
from chroma_core.engine.index import ExactIndex, VectorIndex
from chroma_core.engine.store import PutResult, SQLiteStore, Store

__all__ = ["Engine", "ExactIndex", "PutResult", "SQLiteStore", "Store", "VectorIndex", "open_engine"]
