"""Chroma: which production inputs is my model struggling with, and what should I label next?

>>> import chroma
>>> es = {"model": "m", "model_version": "1", "layer": "ctx"}
>>> session = chroma.TrainingSession(embedding_set=es)  # doctest: +SKIP
"""

from chroma_core.config import Config, load_config
from chroma_core.deletion import delete, delete_set
from chroma_core.drift import clusters, drift
from chroma_core.duplicates import duplicates
from chroma_core.embedding_set import EmbeddingSet, embedding_set_id
from chroma_core.errors import (
    AmbiguousSetError,
    BatchFormatError,
    ChromaError,
    ConfigError,
    DimensionMismatchError,
    InvalidEmbeddingError,
    InvalidEmbeddingSetError,
    InvalidPathError,
    NoProductionDataError,
    NothingToSaveError,
    StorageError,
    TransportError,
    UnknownEmbeddingSetError,
)
from chroma_core.export import ExportReport
from chroma_core.sessions import QuerySession, SavedBatch, TrainingSession, log
from chroma_core.triage import export, records, select
from chroma_core.types import (
    TAGS,
    DeleteReport,
    DuplicateReport,
    Neighbor,
    Pick,
    QueryRequest,
    QueryResult,
    QueryResults,
    RecordTable,
    Selection,
    SelectRequest,
    SetInfo,
    Thresholds,
    UploadReport,
)
from chroma_core.types.drift import Cluster, ClusterReport, DriftReport, WindowDrift
from chroma_core.version import __version__

__all__ = [
    "AmbiguousSetError",
    "BatchFormatError",
    "ChromaError",
    "Cluster",
    "ClusterReport",
    "Config",
    "ConfigError",
    "DeleteReport",
    "DimensionMismatchError",
    "DriftReport",
    "DuplicateReport",
    "EmbeddingSet",
    "ExportReport",
    "InvalidEmbeddingError",
    "InvalidEmbeddingSetError",
    "InvalidPathError",
    "Neighbor",
    "NoProductionDataError",
    "NothingToSaveError",
    "Pick",
    "QueryRequest",
    "QueryResult",
    "QueryResults",
    "QuerySession",
    "RecordTable",
    "SavedBatch",
    "SelectRequest",
    "Selection",
    "SetInfo",
    "StorageError",
    "TAGS",
    "Thresholds",
    "TrainingSession",
    "TransportError",
    "UnknownEmbeddingSetError",
    "UploadReport",
    "WindowDrift",
    "__version__",
    "clusters",
    "delete",
    "delete_set",
    "drift",
    "duplicates",
    "embedding_set_id",
    "export",
    "load_config",
    "log",
    "records",
    "select",
]
