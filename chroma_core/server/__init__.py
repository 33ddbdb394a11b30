"""The HTTP service over the engine (needs the ``[server]`` extra: FastAPI and uvicorn).

``chroma_core.server.wire`` (the wire contract) has no server dependency, so the HTTP transport can share it;
everything else is imported lazily, on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Limits", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Limits", "create_app"):
        from chroma_core.server import app

        return getattr(app, name)
    if name == "serve":
        from chroma_core.server.run import serve

        return serve
    raise AttributeError(name)
