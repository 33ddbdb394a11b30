"""Transports: how sessions reach the engine (in-process by default, HTTP when ``chroma_url`` is set).

Each transport is imported when it is first needed: a client of the service never loads the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_core.config import Config
from chroma_core.transport.base import Transport

if TYPE_CHECKING:
    from chroma_core.transport.http import HTTPTransport
    from chroma_core.transport.local import LocalTransport

__all__ = ["HTTPTransport", "LocalTransport", "Transport", "transport_for"]


def transport_for(config: Config, *, deadline: float | None = None) -> Transport:
    """The transport a config asks for: embedded without ``chroma_url``, HTTP with it.

    ``deadline`` bounds, in seconds, how long one call to the service may take with all its retries (the HTTP
    transport's default is :class:`~chroma_core.transport.http.RetryPolicy`'s).
    """
    if config.embedded:
        from chroma_core.transport.local import LocalTransport

        return LocalTransport(
            config.persist_directory, store_url=config.store_url, tenant=config.application_id or "default"
        )
    from chroma_core.transport.http import HTTPTransport, RetryPolicy

    return HTTPTransport(config, retry=None if deadline is None else RetryPolicy(deadline=deadline))


def __getattr__(name: str) -> object:
    if name == "LocalTransport":
        from chroma_core.transport.local import LocalTransport

        return LocalTransport
    if name == "HTTPTransport":
        from chroma_core.transport.http import HTTPTransport

        return HTTPTransport
    raise AttributeError(name)
