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


def transport_for(config: Config) -> Transport:
    """The transport a config asks for: embedded without ``chroma_url``, HTTP with it."""
    if config.embedded:
        from chroma_core.transport.local import LocalTransport

        return LocalTransport(config.persist_directory)
    from chroma_core.transport.http import HTTPTransport

    return HTTPTransport(config)


def __getattr__(name: str) -> object:
    if name == "LocalTransport":
        from chroma_core.transport.local import LocalTransport

        return LocalTransport
    if name == "HTTPTransport":
        from chroma_core.transport.http import HTTPTransport

        return HTTPTransport
    raise AttributeError(name)
