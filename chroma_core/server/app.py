"""The HTTP service over the engine (FastAPI): one engine per application, so tenants share nothing on disk.

The rooms: ``settings`` (defaults and limits, no FastAPI), ``auth`` (keys, tenants), ``schema`` (the JSON
bodies), ``body`` (reading bodies within the limits), ``routes`` (the ``/v1`` handlers), ``errors`` (failures as
JSON error bodies), ``run`` (uvicorn). This module only puts them together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from chroma_core.server.auth import Keys, Tenants
from chroma_core.server.errors import install_error_handlers
from chroma_core.server.routes import Service, router
from chroma_core.server.routes_watch import router as watch_router
from chroma_core.server.settings import Limits
from chroma_core.version import __version__

__all__ = ["Limits", "create_app"]


def create_app(
    persist_directory: str | os.PathLike[str], *, keys: Keys | None = None, limits: Limits | None = None
) -> FastAPI:
    """The Chroma service. Without ``keys``, only loopback clients are served (as application ``default``)."""
    root = Path(persist_directory)
    spool_dir = root / "incoming"
    spool_dir.mkdir(parents=True, exist_ok=True)
    service = Service(Tenants(root), keys, limits or Limits(), spool_dir)

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
    app.include_router(router)
    app.include_router(watch_router)  # drift, clusters, /metrics, /ui
    return app
