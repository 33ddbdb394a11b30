"""The HTTP service over the engine (needs the ``[server]`` extra: FastAPI and uvicorn).

``wire`` (the wire contract, shared with the HTTP transport), ``settings`` (the service's defaults and limits)
and ``auth`` (keys and tenants) need no server dependency; everything else is imported lazily, on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Limits", "ServerSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Limits", "ServerSettings"):
        from chroma_core.server import settings

        return getattr(settings, name)
    if name == "create_app":
        from chroma_core.server.app import create_app

        return create_app
    if name == "serve":
        from chroma_core.server.run import serve

        return serve
    raise AttributeError(name)
