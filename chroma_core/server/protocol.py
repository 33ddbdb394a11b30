"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request head.

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``), but not one that is opened
and never sends a request, nor one that sends its headers a byte at a time: each holds a file descriptor for as
long as the client likes, and a thousand of them starve ``accept()``. Here a connection has ``header_timeout_s``,
from being opened or from its previous response, to send a whole request head, or it is closed.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["timed_protocol"]

logger = logging.getLogger("chroma.server")


class _TimedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            logger.debug("closing a connection that sent no whole request head in %g s", self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._arm()  # before the next request's head (pipelined, maybe) is handled, which disarms it
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request head arrived: from here the body timeout and the handlers take over


def timed_protocol(header_timeout: float) -> type[H11Protocol]:
    """The h11 protocol class with this head deadline (uvicorn's ``http=`` takes a class)."""
    return type("ChromaH11Protocol", (_TimedH11Protocol,), {"header_timeout": header_timeout})
