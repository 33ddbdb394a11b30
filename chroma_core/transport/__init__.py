"""Transports: how sessions reach the engine (in-process by default, HTTP when ``chroma_url`` is set)."""

from __future__ import annotations

from chroma_core.config import Config
from chroma_core.errors import ConfigError
from chroma_core.transport.base import Transport
from chroma_core.transport.local import LocalTransport

__all__ = ["LocalTransport", "Transport", "transport_for"]


def transport_for(config: Config) -> Transport:
    """The transport a config asks for: embedded without ``chroma_url``, HTTP with it."""
    if config.embedded:
        return LocalTransport(config.persist_directory)
    try:
        from chroma_core.transport.http import HTTPTransport  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(
            f"chroma_url is set to {config.chroma_url!r}, but this Chroma has no HTTP transport installed. "
            "Unset chroma_url (and CHROMA_URL) to use the embedded engine."
        ) from None
    transport: Transport = HTTPTransport(config)
    return transport
