"""Storage of embedding sets, the vector index and the recommendation scoring."""

from chroma_core.engine.engine import Engine, open_engine
from chroma_core.engine.index import ExactIndex, VectorIndex
from chroma_core.engine.scoring import Thresholds
from chroma_core.engine.store import PutResult, SetInfo, SQLiteStore, Store

__all__ = [
    "Engine",
    "ExactIndex",
    "PutResult",
    "SQLiteStore",
    "SetInfo",
    "Store",
    "Thresholds",
    "VectorIndex",
    "open_engine",
]
