"""Keep-alive ``http.client`` connections for the HTTP transport: the same request for a third of requests' CPU.

A one-vector query cost 0.75 ms of client CPU through ``requests`` here and 0.22 ms on a bare keep-alive
``http.client`` connection, and 1.5 ms less wall time on loopback (benchmarks/bench_wire.py, section 2c).
:class:`Connections` sends a request that needs nothing of requests' machinery (a bytes body, no proxy) on a
connection of the calling thread's own, and hands back a ``requests.Response``, raising requests' own exceptions,
so that everything above it (retries and their backoff, error mapping, the JSON fallback) is one code for both.

What it keeps of requests: the session's headers (read on every request), gzip and deflate answers decoded, TLS
verified against the CA bundle requests would use (``session.verify``: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``
or certifi's; requests reads no ``SSL_CERT_FILE``, so neither does this) with its client certificate, and connect
and read timeouts. A connection the service closed while idle is noticed before the request where it can be;
where it cannot (the close races the request), the request goes once more on a fresh connection: every request
the transport sends is safe to repeat. Any other failure closes the connection and raises as requests would.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import select
import socket
import ssl
import threading
import weakref
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers

__all__ = ["REDIRECTS", "Connections"]

#: Answers that requests would follow; the transport sends such a request again through requests.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: What this module decodes (requests' own list depends on what is installed: brotli, zstandard).
_ACCEPT_ENCODING = "gzip, deflate"
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


#: Bodies up to this size leave in the same write as the head (a copy this small costs less than a second write).
_ONE_WRITE_BELOW = 64 * 1024


class _OneWrite(http.client.HTTPConnection):
    """Sends a request's head and a small body in one write.

    http.client writes them apart; on loopback each write wakes the service, which then reads the head, goes
    back to its event loop and wakes again for the body: two rounds of its loop and of the kernel's delivery for a
    query where one does.
    """

    body_after_head = b""

    def send(self, data: Any) -> None:
        body, self.body_after_head = self.body_after_head, b""
        super().send(data + body if body else data)


class _OneWriteTLS(_OneWrite, http.client.HTTPSConnection):
    pass


def _dropped(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the peer closed it (or sent what nobody asked for)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _decoded(content: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(content) if content else content
        if encoding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:  # a raw deflate stream without the zlib header, as some servers send
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        raise requests.exceptions.ContentDecodingError(f"the answer's {encoding} body is damaged: {exc}") from exc
    return content


class Connections:
    """One keep-alive connection per thread to the origin of ``base``, with the headers of ``session``."""

    def __init__(self, base: str, session: requests.Session) -> None:
        parts = urlsplit(base)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path.rstrip("/")
        self._session = session
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._pid = os.getpid()
        self._tls: ssl.SSLContext | None = None

    def close(self) -> None:
        """Close every thread's connection (each is opened again by its next request)."""
        with self._lock:
            for conn in list(self._open):
                conn.close()

    def _context(self) -> ssl.SSLContext:
        """The TLS settings requests would use for this session (read when the first connection is made)."""
        if self._tls is None:
            verify, cert = self._session.verify, self._session.cert
            context = ssl.create_default_context()
            if verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                where = DEFAULT_CA_BUNDLE_PATH if verify is True or not verify else str(verify)
                if os.path.isdir(where):
                    context.load_verify_locations(capath=where)
                else:
                    context.load_verify_locations(cafile=where)
            if cert:
                certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
                context.load_cert_chain(certfile, keyfile)
            self._tls = context
        return self._tls

    def _connection(self, connect_timeout: float) -> tuple[_OneWrite, bool]:
        """This thread's connection, connected; and whether it had already carried a request."""
        if os.getpid() != self._pid:  # a forked child: the parent's sockets are not this process's to use
            self._pid, self._local = os.getpid(), threading.local()
            # A lock another thread of the parent held at the fork would stay held here for ever.
            self._open, self._lock = weakref.WeakSet(), threading.Lock()
        conn: _OneWrite | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.https:
                conn = _OneWriteTLS(self.host, self.port, context=self._context())
            else:
                conn = _OneWrite(self.host, self.port)
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        reused = conn.sock is not None
        if reused and _dropped(conn.sock):
            conn.close()
            reused = False
        if conn.sock is None:
            conn.timeout = connect_timeout
            try:
                conn.connect()
            except TimeoutError as exc:
                conn.close()
                raise requests.ConnectTimeout(f"connecting to {self._origin} timed out") from exc
            except ssl.SSLError as exc:
                conn.close()
                raise requests.exceptions.SSLError(f"TLS with {self._origin} failed: {exc}") from exc
            except OSError as exc:
                conn.close()
                raise requests.ConnectionError(f"cannot connect to {self._origin}: {exc}") from exc
        return conn, reused

    @contextlib.contextmanager
    def _failures(self, conn: http.client.HTTPConnection, reading: bool) -> Iterator[None]:
        """requests' exception for each way a request can fail; the connection is closed (its state is unknown)."""
        try:
            yield
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise requests.ReadTimeout(f"{self._origin} did not answer in time") from exc
            if reading and isinstance(exc, (OSError, http.client.HTTPException)):
                # What requests raises for a body cut off mid-answer (urllib3's ProtocolError while reading).
                raise requests.exceptions.ChunkedEncodingError(f"the answer was cut off: {exc!r}") from exc
            if isinstance(exc, ssl.SSLError):
                raise requests.exceptions.SSLError(f"TLS with {self._origin} failed: {exc}") from exc
            if isinstance(exc, (OSError, http.client.HTTPException)):
                raise requests.ConnectionError(f"the connection to {self._origin} failed: {exc!r}") from exc
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        timeout: tuple[float, float],
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Send one request (``path`` below the base's path) and read its whole answer."""
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        merged: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(self._session.headers)
        if headers:
            merged.update(headers)
        merged["Accept-Encoding"] = _ACCEPT_ENCODING
        joined = data is not None and len(data) <= _ONE_WRITE_BELOW
        if joined:
            merged["Content-Length"] = str(len(data or b""))
        for fresh_try in (False, True):
            conn, reused = self._connection(timeout[0])
            try:
                with self._failures(conn, reading=False):
                    conn.sock.settimeout(timeout[1])
                    conn.body_after_head = data if joined and data else b""
                    conn.request(method, target, body=None if joined else data, headers=merged)
                    reply = conn.getresponse()
            except requests.ConnectionError as exc:
                # The service closed the idle connection as the request left: once more on a new one.
                if reused and not fresh_try and isinstance(exc.__cause__, _STALE):
                    continue
                raise
            with self._failures(conn, reading=True):
                content = reply.read()
            return self._response(method, target, merged, reply, content)
        raise AssertionError("unreachable")  # pragma: no cover

    def _response(
        self,
        method: str,
        target: str,
        sent: CaseInsensitiveDict[str | bytes],
        reply: http.client.HTTPResponse,
        content: bytes,
    ) -> requests.Response:
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in reply.getheaders():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = requests.Response()
        response.status_code = reply.status
        response.reason = reply.reason
        response.headers = headers
        response._content = _decoded(content, headers.get("Content-Encoding", ""))
        response._content_consumed = True  # type: ignore[attr-defined]  # (requests' own typing lacks it)
        response.url = self._origin + target
        response.encoding = get_encoding_from_headers(headers)
        prepared = requests.PreparedRequest()
        prepared.method, prepared.url = method, response.url
        prepared.headers = sent  # type: ignore[assignment]  # (types-requests: str values; requests: str | bytes)
        response.request = prepared
        return response
