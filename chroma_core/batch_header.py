"""The header of a batch, as the first line of a JSONL batch file (and the binary upload form) holds it."""

from __future__ import annotations

from typing import Any

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import BatchFormatError, ChromaError
from chroma_core.records import MODES, BatchHeader

__all__ = ["FORMAT_VERSION", "header_json", "parse_header"]

FORMAT_VERSION = 1


def header_json(header: BatchHeader) -> dict[str, Any]:
    """The header line of a batch file, as a JSON object."""
    return {
        "chroma_batch": FORMAT_VERSION,
        "batch_id": header.batch_id,
        "set_id": header.set_id,
        "embedding_set": dict(header.embedding_set.key),
        "mode": header.mode,
        "dimension": header.dimension,
        "dtype": "float32",
        "created_at": header.created_at,
    }


def parse_header(obj: Any) -> BatchHeader:
    """A batch header from the JSON object of a file's first line; :class:`BatchFormatError` says what is wrong."""

    def bad(reason: str) -> BatchFormatError:
        return BatchFormatError(f"line 1: {reason}. The first line must be a batch header; see docs/batch-format.md.")

    if not isinstance(obj, dict) or "chroma_batch" not in obj:
        raise bad("not a Chroma batch header (no 'chroma_batch' key)")
    if obj["chroma_batch"] != FORMAT_VERSION:
        raise bad(
            f"format version {obj['chroma_batch']!r} is not supported (this Chroma reads version 1); upgrade chroma"
        )
    try:
        embedding_set = EmbeddingSet.from_dict(obj.get("embedding_set"))  # type: ignore[arg-type]
    except ChromaError as exc:
        raise bad(f"bad embedding_set: {exc}") from None
    if obj.get("set_id") not in (None, embedding_set.id):
        raise bad(f"set_id {obj.get('set_id')!r} does not match the embedding_set, whose id is {embedding_set.id!r}")
    mode = obj.get("mode", "training")
    if mode not in MODES:
        raise bad(f"mode must be 'training' or 'production', not {mode!r}")
    dimension = obj.get("dimension")
    if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension <= 0:
        raise bad(f"dimension must be a positive integer, not {dimension!r}")
    if obj.get("dtype", "float32") != "float32":
        raise bad(f"dtype {obj.get('dtype')!r} is not supported; embeddings are stored as float32")
    batch_id = obj.get("batch_id")
    if not isinstance(batch_id, str) or not batch_id or len(batch_id) > 128:
        raise bad("batch_id must be a non-empty string of at most 128 characters")
    return BatchHeader(batch_id, embedding_set, mode, dimension, str(obj.get("created_at", "")))
