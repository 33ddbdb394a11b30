"""The HTTP service over the engine (FastAPI): one engine per application, so tenants share nothing on disk.

The rooms: ``settings`` (defaults and limits, no FastAPI), ``auth`` (keys, tenants), ``schema`` (the JSON
bodies), ``body`` (reading bodies within the limits), ``routes`` (the ``/v1`` handlers), ``errors`` (failures as
JSON error bodies), ``run`` (uvicorn). This module only puts them together.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chroma_core.atomic import private_dir
from chroma_core.config import check_store_url
from chroma_core.engine import Engine
from chroma_core.server.auth import Keys, Tenants
from chroma_core.server.duplicates import router as duplicates_router
from chroma_core.server.errors import error_response, install_error_handlers
from chroma_core.server.routes import Service, router
from chroma_core.server.routes_ui import page_router
from chroma_core.server.routes_ui import router as ui_router
from chroma_core.server.routes_watch import router as watch_router
from chroma_core.server.settings import Limits
from chroma_core.version import __version__

__all__ = ["STORE_RETRY_AFTER_S", "DatabaseTenants", "Limits", "OneEngine", "create_app"]

logger = logging.getLogger("chroma.server")

#: The Retry-After of a 503 while the database cannot be reached.
STORE_RETRY_AFTER_S = 2


class DatabaseTenants(Tenants):
    """Every application in one PostgreSQL database, as a tenant of its own (row-level security keeps them apart);
    the service holds no data itself, so any number of replicas can serve the same database."""

    def __init__(self, root: str | os.PathLike[str], store_url: str) -> None:
        from chroma_core.engine.postgres_pool import open_database, release

        super().__init__(root)
        self.store_url = check_store_url(store_url)
        self._database: Any = open_database(self.store_url)  # a wrong URL or a missing extension fails at start
        self._release = release

    def engine(self, application_id: str) -> Engine:
        from chroma_core.engine.postgres_store import PostgresStore

        with self._lock:
            engine = self._engines.get(application_id)
            if engine is None:
                engine = self._engines[application_id] = Engine(PostgresStore(self.store_url, tenant=application_id))
            return engine

    def close(self) -> None:
        super().close()
        if self._database is not None:
            self._release(self._database)
            self._database = None


class OneEngine(Tenants):
    """Every request served by one engine already open in this process (``chroma ui`` over the embedded data)."""

    def __init__(self, root: str | os.PathLike[str], engine: Engine) -> None:
        super().__init__(root)
        self._engine = engine

    def engine(self, application_id: str) -> Engine:
        return self._engine

    def close(self) -> None:  # the engine belongs to whoever opened it
        pass


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A database restart or an exhausted pool is temporary: clients retry 503s, honouring Retry-After.
    logger.warning("the store is unavailable: %s", exc)
    response = error_response("store_unavailable", f"{exc} Retry shortly.", 503)
    response.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
    return response


def create_app(
    persist_directory: str | os.PathLike[str],
    *,
    keys: Keys | None = None,
    limits: Limits | None = None,
    store_url: str | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The Chroma service. Without ``keys``, only loopback clients are served (as application ``default``).

    ``store_url`` (default ``$CHROMA_STORE_URL``): keep every application's data in that PostgreSQL database rather
    than in SQLite under ``persist_directory`` (which then holds only uploads being received).
    ``engine``: serve that one engine to every caller instead (``chroma ui`` on the embedded data; no ``keys``).
    """
    root = private_dir(persist_directory)
    spool_dir = private_dir(root / "incoming")  # upload spool files: 0600 (mkstemp), in a 0700 folder
    store_url = store_url or os.environ.get("CHROMA_STORE_URL") or None
    tenants: Tenants
    if engine is not None:
        tenants = OneEngine(root, engine)
    else:
        tenants = DatabaseTenants(root, store_url) if store_url else Tenants(root)
    service = Service(tenants, keys, limits or Limits(), spool_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.tenants.close()

    app = FastAPI(
        title="Chroma",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Which production inputs is my model struggling with, and what should I label next?",
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app)
    if store_url:
        from chroma_core.engine.postgres_pool import DatabaseUnavailableError

        app.exception_handler(DatabaseUnavailableError)(_store_unavailable)
    app.include_router(router)
    app.include_router(duplicates_router)
    app.include_router(watch_router)  # drift, clusters, /metrics
    app.include_router(ui_router)  # the map and points the page reads
    app.include_router(page_router)  # /ui: static, no data
    return app
