"""Connections to the PostgreSQL store: one pool per database URL in a process, shared by every tenant's store.

Opening a URL checks it once: the server answers, the ``vector`` extension is there (created when the role may),
and the schema is current (created under an advisory lock, so replicas starting together do not race). Every
failure is a :class:`~chroma_core.errors.StorageError` naming the URL with its password masked; a password never
reaches a log line or an error message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from chroma_core.engine.postgres_schema import DDL, VERSION
from chroma_core.errors import ConfigError, StorageError
from chroma_core.secret import redact_url

__all__ = ["Database", "DatabaseUnavailableError", "open_database", "release"]

logger = logging.getLogger("chroma.engine")

#: A pooled connection idle for less than this is handed out without a check (see ``Database._check``).
CHECK_IDLE_S = 1.0

_SCHEMA_LOCK = 0x6368726F6D61  # pg_advisory_xact_lock key ("chroma")


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached now (down, restarting, or every pooled connection busy): worth a retry."""


def _modules() -> tuple[Any, Any, Any]:
    try:
        import pgvector.psycopg
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            f"a postgresql:// store URL needs the [postgres] extra ({exc.name} is missing): "
            "pip install 'chroma-ml[postgres]'"
        ) from None
    return psycopg, psycopg_pool, pgvector.psycopg


class Database:
    """A pool of connections to one database, ready for :class:`~chroma_core.engine.postgres_store.PostgresStore`.

    ``timeout``: how long a caller waits for a free connection before a :class:`StorageError` (so a flood of
    requests is refused after a bounded wait instead of queueing without end).
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 5.0) -> None:
        self.url = url
        self.shown = redact_url(url)
        self._password = unquote(urlsplit(url).password or "")
        self.psycopg, pool_mod, self._pgvector = _modules()
        self._pool_mod = pool_mod
        self._last_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        with self.errors("connect to"):
            with self.psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                self._prepare(conn)
            self.pool = pool_mod.ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs={"connect_timeout": 10},
                configure=self._configure,
                reset=self._returned,
                check=self._check,
                open=True,
            )
        self.timeout_error: type[Exception] = pool_mod.PoolTimeout
        #: A binary loader that keeps a value's bytes as they came (for numpy to parse many at once).
        self.raw_loader: type[Any] = self.psycopg.types.string.ByteaBinaryLoader
        self.refs = 0

    def _returned(self, conn: Any) -> None:
        self._last_used[conn] = time.monotonic()

    def _check(self, conn: Any) -> None:
        """Check a connection as it is handed out, unless it came back within :data:`CHECK_IDLE_S` (a check is
        a round trip, a fifth of a query's). After a database restart, a connection checked so is never dead;
        one used just before the restart may be, and its request is answered as unavailable (503, retried)."""
        if time.monotonic() - self._last_used.get(conn, -CHECK_IDLE_S) >= CHECK_IDLE_S:
            self._pool_mod.ConnectionPool.check_connection(conn)

    def _configure(self, conn: Any) -> None:
        self._pgvector.register_vector(conn)
        # A set's index is partial (its tenant and set id are literals in the predicate): a generic plan of a
        # prepared statement could not prove a query matches it, so plans are always made for the values given.
        conn.execute("SET plan_cache_mode = force_custom_plan")
        conn.commit()

    def _prepare(self, conn: Any) -> None:
        have = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if have is None:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except self.psycopg.Error as exc:
                database = conn.info.dbname
                raise StorageError(
                    f"the database {self.shown!r} has no 'vector' extension and this role cannot create it "
                    f"({_first_line(exc)}). Install pgvector on the server and run, as a superuser: "
                    f'psql -d {database} -c "CREATE EXTENSION vector"'
                ) from None
        current = conn.execute("SELECT to_regclass('chroma_schema')").fetchone()[0]
        if current is not None and conn.execute("SELECT max(version) FROM chroma_schema").fetchone()[0] == VERSION:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in DDL:
                conn.execute(statement)
            conn.execute("DELETE FROM chroma_schema")
            conn.execute("INSERT INTO chroma_schema (version) VALUES (%s)", (VERSION,))
        logger.info("created the store's schema (version %d) in %s", VERSION, self.shown)

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn the driver's and the pool's failures into :class:`StorageError` (password masked)."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            # Before the driver's errors: the pool's timeout is an OperationalError too, but means "all busy".
            if type(exc).__module__.startswith("psycopg_pool"):
                raise DatabaseUnavailableError(
                    f"no free connection to the store {self.shown!r} within the pool's timeout; the database is "
                    "overloaded or unreachable: retry later, or raise the pool size."
                ) from None
            if isinstance(exc, self.psycopg.OperationalError):  # the connection failed or was lost
                raise DatabaseUnavailableError(self._message(doing, exc)) from None
            if isinstance(exc, self.psycopg.Error):
                raise StorageError(self._message(doing, exc)) from None
            raise

    def _message(self, doing: str, exc: BaseException) -> str:
        text = _first_line(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return f"cannot {doing} the store {self.shown!r}: {text}. Check the store URL, and that the database is up."

    def close(self) -> None:
        self.pool.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


_databases: dict[str, Database] = {}
_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The process's shared :class:`Database` for ``url`` (opened on first use; counted, see :func:`release`)."""
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url)
        db.refs += 1
        return db


def release(db: Database) -> None:
    """One store is done with ``db``; the pool closes with the last."""
    with _lock:
        db.refs -= 1
        if db.refs <= 0 and _databases.get(db.url) is db:
            del _databases[db.url]
            db.close()
