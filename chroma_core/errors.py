"""Every error Chroma raises on purpose.

The tree::

    ChromaError
    ├── ConfigError (ValueError)               chroma.json, chroma_json, environment, arguments
    ├── InvalidEmbeddingSetError (ValueError)  empty, nested or non-scalar embedding_set
    ├── InvalidEmbeddingError (ValueError)     NaN/inf, wrong shape, undecodable base64
    │   └── DimensionMismatchError             the set holds vectors of another dimension
    ├── InvalidPathError (ValueError)          a bufferlocal template that would leave its directory
    ├── NothingToSaveError (ValueError)        save() with nothing logged
    ├── BatchFormatError (ValueError)          a batch file that cannot be read at all
    ├── UnknownEmbeddingSetError (LookupError) a set id the engine has never seen
    ├── AmbiguousSetError (LookupError)        an id prefix that names several sets
    ├── NoProductionDataError (LookupError)    select/export of production records a set does not hold
    ├── StorageError (OSError)                 the persist directory cannot be read or written
    └── TransportError                         the engine could not be reached or refused a request

Each message says what was wrong and what to do about it. Callers that only care about "Chroma failed" catch
``ChromaError``; callers that already handle ``ValueError`` for bad input keep working.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousSetError",
    "BatchFormatError",
    "ChromaError",
    "ConfigError",
    "DimensionMismatchError",
    "InvalidEmbeddingError",
    "InvalidEmbeddingSetError",
    "InvalidPathError",
    "NoProductionDataError",
    "NothingToSaveError",
    "StorageError",
    "TransportError",
    "UnknownEmbeddingSetError",
    "with_advice",
]


class ChromaError(Exception):
    """Root of every error raised by Chroma on purpose."""


class ConfigError(ChromaError, ValueError):
    """The configuration is missing, malformed or contradictory."""


class InvalidEmbeddingSetError(ChromaError, ValueError):
    """An ``embedding_set`` dict that cannot identify a set."""


class InvalidEmbeddingError(ChromaError, ValueError):
    """An embedding that cannot be stored (non-finite values, wrong shape, bad encoding)."""


class DimensionMismatchError(InvalidEmbeddingError):
    """An embedding whose dimension differs from the one its set already holds."""

    def __init__(self, message: str, *, expected: int | None = None, got: int | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class InvalidPathError(ChromaError, ValueError):
    """A file name that would be written outside the directory the user chose."""


class NothingToSaveError(ChromaError, ValueError):
    """``save()`` was called on a session with nothing logged since the last save."""


class BatchFormatError(ChromaError, ValueError):
    """A batch file that cannot be read at all (no usable header, not JSONL, unreadable)."""


class UnknownEmbeddingSetError(ChromaError, LookupError):
    """An embedding set id the engine holds no data for."""

    def __init__(self, set_id: str) -> None:
        super().__init__(
            f"unknown embedding set {set_id!r}: no training embeddings have been stored for it. "
            "Run `python -m chroma sets` to list the known sets, or save/upload training data first."
        )
        self.set_id = set_id


class AmbiguousSetError(ChromaError, LookupError):
    """An id prefix that names more than one stored set."""

    def __init__(self, prefix: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
        super().__init__(
            f"the id prefix {prefix!r} names {len(matches)} embedding sets ({shown}); give more digits of the id."
        )
        self.prefix = prefix
        self.matches = matches


class NoProductionDataError(ChromaError, LookupError):
    """A set with no production records to select from."""

    @classmethod
    def for_set(cls, set_id: str, since: float | None = None) -> NoProductionDataError:
        when = "" if since is None else " logged since the given time"
        return cls(
            f"embedding set {set_id!r} holds no production records{when}, so there is nothing to select. "
            "Log production embeddings with a QuerySession (it stores them unless store=False), the @recommend "
            "decorator, or `python -m chroma upload` of production batches."
        )


class StorageError(ChromaError, OSError):
    """The persist directory cannot be read or written."""


class TransportError(ChromaError):
    """The engine could not be reached, or refused the request."""


def with_advice(exc: ChromaError, advice: str) -> ChromaError:
    """``exc`` with ``advice`` added to its message (same type, same traceback): what happened and what to do."""
    message = str(exc.args[0]) if exc.args else str(exc)
    exc.args = (message.rstrip() + advice, *exc.args[1:])
    return exc
