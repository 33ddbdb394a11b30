"""Transports: how sessions reach the engine (in-process by default, HTTP when ``chroma_url`` is set)."""

from __future__ import annotations

from chroma_core.config import Config
from chroma_core.transport.base import Transport
from chroma_core.transport.local import LocalTransport

__all__ = ["LocalTransport", "Transport", "transport_for"]


def transport_for(config: Config) -> Transport:
    """The transport a config asks for: embedded without ``chroma_url``, HTTP with it."""
    if config.embedded:
        return LocalTransport(config.persist_directory)
    from chroma_core.transport.http import HTTPTransport

    return HTTPTransport(config)
