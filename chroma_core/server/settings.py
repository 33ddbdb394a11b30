"""The service's settings: the field defaults below are its only defaults.

No server dependency here, so ``python -m chroma serve --help`` (whose flags take their defaults from these
fields) and the client never load FastAPI to know them.
"""

from __future__ import annotations

import dataclasses
import math

from chroma_core.errors import ConfigError

__all__ = ["LOG_LEVELS", "MIB", "Limits", "ServerSettings", "check_setting"]

MIB = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")
#: Fields for which 0 means something (report no problems; stop at once on SIGTERM; any free port); every other
#: number must be positive: a zero limit or timeout would refuse every request, a negative one is a typo.
_ZERO_ALLOWED = frozenset({"problems_reported", "graceful_shutdown_s", "port"})


def check_setting(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` fits the numeric setting ``name`` (a Limits or ServerSettings field)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, not {value!r}.")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}.")
    if name in _ZERO_ALLOWED and value < 0:
        raise ConfigError(f"{name} must be 0 or more, not {value!r}.")
    if name not in _ZERO_ALLOWED and value <= 0:
        raise ConfigError(f"{name} must be more than 0, not {value!r}: a zero or negative limit refuses everything.")


def _check_numbers(settings: object) -> None:
    for field in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, field.name)
        if field.type in ("int", "float"):
            check_setting(field.name, value)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; over a limit is a 413 (or 422 for a dimension) that says which."""

    #: Largest request body accepted, counted while it streams in (batch uploads are spooled to disk).
    max_body_bytes: int = 256 * MIB
    #: Most embeddings in one query request: the client splits larger batches.
    max_embeddings_per_request: int = 1024
    #: Largest embedding dimension a set may be created with, queried at, or declared by a batch header.
    max_dimension: int = 16384
    #: Largest JSON body (queries, selections, deletes), counted after gzip is undone: larger query batches are
    #: split by the client (``max_embeddings_per_request``), so a few MiB is ample.
    max_json_bytes: int = 4 * MIB
    #: Most bytes a gzipped batch may expand to: the body limit counts what arrives, this what it becomes.
    max_decompressed_bytes: int = 1024 * MIB
    #: Bad lines in one batch before the upload is refused whole (each is checked and counted: a file of blank
    #: lines must not cost minutes); only the first ``problems_reported`` of them are returned.
    max_bad_lines: int = 10_000
    problems_reported: int = 100
    #: Longest pause between two pieces of a request body before it is refused (a slow client holds a worker,
    #: a spool file and memory for as long as it is allowed to dawdle).
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _check_numbers(self)

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
    #: An idle connection between requests is closed after this long.
    keep_alive_s: int = 5
    #: A connection must send a whole request head (request line and headers) within this long of being opened
    #: or of its previous response, so idle and slow-header sockets cannot pile up.
    header_timeout_s: float = 10.0
    #: Largest request head (request line and headers, bytes): over it, a 431 and the connection closed.
    max_header_bytes: int = 16 * 1024
    #: Open connections and requests at once; more are answered 503 at once (the client retries with backoff),
    #: which keeps file descriptors free for the ones being served.
    max_concurrency: int = 256

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}.")
        _check_numbers(self)
