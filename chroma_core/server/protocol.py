"""uvicorn's HTTP/1.1 protocol (h11) with a deadline and a size bound for each request head.

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``), but not one that is opened
and never sends a request, nor one that sends its headers a byte at a time: each holds a file descriptor for as
long as the client likes, and a thousand of them starve ``accept()``. Here a connection has ``header_timeout_s``,
from being opened or from its previous response, to send a whole request head, or it is closed.

h11's ``max_incomplete_event_size`` only bounds a head that is still arriving: a whole 60 KiB head that lands in one
read (uvicorn reads up to 64 KiB at a time) is parsed and handed to the app. Here a complete head is measured too,
and either kind over ``max_header_bytes`` is answered 431 and the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # uvicorn's own default, from where it takes it
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["head_size", "timed_protocol"]

logger = logging.getLogger("chroma.server")

#: The request line's and each header line's fixed bytes: " " x2 + "HTTP/" + CRLF; ": " + CRLF; the blank line.
_LINE_OVERHEAD = 2 + 5 + 2
_HEADER_OVERHEAD = 2 + 2


def head_size(request: h11.Request) -> int:
    """Bytes of ``request``'s head as sent without optional whitespace: request line, header lines, blank line."""
    size = len(request.method) + len(request.target) + len(request.http_version) + _LINE_OVERHEAD + 2
    return size + sum(len(name) + len(value) + _HEADER_OVERHEAD for name, value in request.headers)


class _HeadLimitedConnection(h11.Connection):
    """h11's server side, refusing a complete request head over the limit as h11 refuses an incomplete one."""

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head_bytes)
        self.max_head_bytes = max_head_bytes
        self.refused_status = 400

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused_status = exc.error_status_hint  # 431 when h11's own buffer bound tripped
            raise
        if isinstance(event, h11.Request) and head_size(event) > self.max_head_bytes:
            # uvicorn turns a RemoteProtocolError into its error response and a close, before any app code runs.
            self.refused_status = 431
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event


class _TimedH11Protocol(H11Protocol):
    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        self.conn = _HeadLimitedConnection(limit if limit is not None else DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)

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

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 could not take: 431 for an oversized head, else its 400."""
        conn = self.conn
        if not isinstance(conn, _HeadLimitedConnection) or conn.refused_status != 431:
            super().send_400_response(msg)
            return
        limit = conn.max_head_bytes
        logger.info("refused a request head over %d bytes with 431", limit)
        text = f"The request head (request line and headers) is over {limit} bytes: send fewer or shorter headers.\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        self.transport.write(
            conn.send(h11.Response(status_code=431, headers=headers, reason=b"Request Header Fields Too Large")) or b""
        )
        self.transport.write(conn.send(h11.Data(data=text.encode("ascii"))) or b"")
        self.transport.write(conn.send(h11.EndOfMessage()) or b"")
        self.transport.close()


def timed_protocol(header_timeout: float) -> type[H11Protocol]:
    """The h11 protocol class with this head deadline (uvicorn's ``http=`` takes a class)."""
    return type("ChromaH11Protocol", (_TimedH11Protocol,), {"header_timeout": header_timeout})
