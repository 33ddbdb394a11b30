"""The service's settings: the field defaults below are its only defaults.

No server dependency here, so ``python -m chroma serve --help`` (whose flags take their defaults from these
fields) and the client never load FastAPI to know them.
"""

from __future__ import annotations

import dataclasses

from chroma_core.errors import ConfigError

__all__ = ["LOG_LEVELS", "MIB", "Limits", "ServerSettings"]

MIB = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; over a limit is a 413 (or 422 for a dimension) that says which."""

    #: Largest request body accepted, counted while it streams in (batch uploads are spooled to disk).
    max_body_bytes: int = 256 * MIB
    #: Most embeddings in one query request: the client splits larger batches.
    max_embeddings_per_request: int = 1024
    #: Largest embedding dimension a set may be created with or queried at.
    max_dimension: int = 16384

    @property
    def max_body_mib(self) -> int:
        """``max_body_bytes`` in whole MiB (the unit of ``--max-body-mb``)."""
        return self.max_body_bytes // MIB


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """How ``python -m chroma serve`` runs: where it listens, where it keeps data, whose keys it accepts."""

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    persist_directory: str = ".chroma-server"
    #: A PostgreSQL database (``postgresql://...``) that every replica shares; None: SQLite under persist_directory.
    store_url: str | None = None
    keys_file: str | None = None  # JSON {"<api key>": "<application_id>"}; None serves loopback clients only
    log_level: str = "info"
    #: After SIGTERM/SIGINT, in-flight requests (uploads included) get this long to finish; new ones are refused.
    graceful_shutdown_s: int = 30
    limits: Limits = dataclasses.field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}.")
