"""The transport's keep-alive connections (http_conn.py): what they must keep of requests, against real sockets."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import json
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests

from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import TransportError
from chroma_core.records import BatchHeader, Records
from chroma_core.server.wire import QUERY_CONTENT_TYPE
from chroma_core.transport import http_conn
from chroma_core.transport.http import HTTPTransport, RetryPolicy
from chroma_core.types import QueryRequest
from tests.chroma_core.transport.test_http import Scripted
from tests.conftest import SET, ChromaServer

HEALTH = json.dumps({"status": "ok", "version": "test"}).encode()
RESULT = {
    "input_uri": "/a",
    "recommendations": [],
    "training_recommended": False,
    "not_useful": False,
    "scores": {},
    "thresholds": {},
    "nearest": [],
}


class KeepAlive(Scripted):
    """An HTTP/1.1 server on 127.0.0.1 that keeps connections open; ``answer(handler)`` may script each reply."""

    def __init__(self, answer=None, tls: ssl.SSLContext | None = None):
        self.requests: list[tuple[str, str, dict, tuple]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), self.client_address))
                if answer is not None and answer(self, body, len(outer.requests)):
                    return
                _reply(self, 200, HEALTH)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def connections(self) -> int:
        return len({r[3] for r in self.requests})


def transport(url: str, sleeps: list[float] | None = None, **config) -> HTTPTransport:
    return HTTPTransport(
        load_config(chroma_url=url, environ={}, **config),
        retry=RetryPolicy(attempts=3, jitter=0.0),
        sleep=(sleeps if sleeps is not None else []).append,
    )


def _reply(handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_requests_share_one_keep_alive_connection_with_the_sessions_headers(monkeypatch):
    def not_requests(*args, **kwargs):
        raise AssertionError("sent through requests")

    monkeypatch.setattr(requests.Session, "request", not_requests)
    with KeepAlive() as server:
        t = transport(server.url, api_key="secret-key-xyz", application_id="app")
        for _ in range(5):
            assert t.health()["status"] == "ok"
    assert server.connections == 1 and len(server.requests) == 5
    headers = server.requests[0][2]
    assert headers["Authorization"] == "Bearer secret-key-xyz" and headers["X-Chroma-Application-Id"] == "app"
    assert headers["User-Agent"].startswith("chroma-python/") and headers["Accept-Encoding"] == "gzip, deflate"


def test_each_thread_has_its_own_connection_and_close_ends_them():
    with KeepAlive() as server:
        t = transport(server.url)
        barrier = threading.Barrier(4)

        def work():
            barrier.wait()
            for _ in range(5):
                t.health()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(server.requests) == 20 and server.connections == 4
        t.close()
        t.health()  # a closed transport's next request opens a connection again
    assert server.connections == 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone():
    with KeepAlive() as server:
        t = transport(server.url)
        t.health()
        pid = os.fork()
        if pid == 0:  # the child: its first request must not write on the parent's socket
            code = 1
            try:
                code = 0 if t.health()["status"] == "ok" and t.health()["status"] == "ok" else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert t.health()["status"] == "ok"  # the parent's connection still carries its requests
    # One connection for the parent (kept across the fork), one for the child; nothing else opened.
    assert len(server.requests) == 4 and server.connections == 2
    assert server.requests[0][3] == server.requests[3][3]


def test_a_connection_the_service_closed_while_idle_is_replaced_before_the_request():
    def close_after_answer(handler, body, n):
        _reply(handler, 200, HEALTH)
        handler.close_connection = True  # no "Connection: close" header: the client finds out from the socket
        return True

    with KeepAlive(close_after_answer) as server:
        sleeps: list[float] = []
        t = transport(server.url, sleeps)
        for _ in range(3):
            t.health()
    assert sleeps == [] and len(server.requests) == 3 and server.connections == 3


def test_a_keep_alive_connection_broken_under_a_request_is_retried_once_at_once():
    """The service closes a kept-alive connection as a request arrives: sent again on a new one, without backoff."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(HEALTH),
        HEALTH,
    )
    seen: list[int] = []

    def read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)

    def serve():
        first, _ = listener.accept()
        read_request(first)
        first.sendall(answer)
        read_request(first)  # the second request, on the kept-alive connection: closed unanswered
        seen.append(1)
        first.close()
        second, _ = listener.accept()
        read_request(second)
        seen.append(2)
        second.sendall(answer)
        second.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    sleeps: list[float] = []
    t = transport(f"http://127.0.0.1:{port}", sleeps)
    try:
        assert t.health()["status"] == "ok"
        assert t.health()["status"] == "ok"
    finally:
        server.join(5)
        listener.close()
    assert seen == [1, 2] and sleeps == []


def test_a_body_cut_off_on_a_kept_alive_connection_backs_off_then_succeeds():
    def cut_first(handler, body, n):
        if n != 2:
            return False
        handler.send_response(200)
        handler.send_header("Content-Length", "500")
        handler.end_headers()
        handler.wfile.write(b'{"status": "o')
        handler.close_connection = True
        return True

    with KeepAlive(cut_first) as server:
        sleeps: list[float] = []
        t = transport(server.url, sleeps)
        t.health()
        assert t.health()["status"] == "ok"
    assert len(server.requests) == 3 and sleeps == [0.25]  # the tenacity backoff, not the at-once reconnect


def test_gzip_answers_are_decoded_and_redirects_followed_through_requests():
    def scripted(handler, body, n):
        if handler.path == "/v1/health":
            _reply(handler, 307, b"", {"Location": "/v1/moved"})
            return True
        _reply(handler, 200, gzip.compress(json.dumps({"sets": []}).encode()), {"Content-Encoding": "gzip"})
        return True

    with KeepAlive(scripted) as server:
        t = transport(server.url)
        assert t.list_sets() == []
        assert t.health() == {"sets": []}
    assert [r[1] for r in server.requests] == ["/v1/sets", "/v1/health", "/v1/health", "/v1/moved"]


def test_a_proxy_from_the_environment_routes_through_requests(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "")
    with KeepAlive() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        t = HTTPTransport(load_config(chroma_url="http://chroma.internal:8000", environ={}))
        assert t.health()["status"] == "ok"
        explicit = transport("http://chroma.internal:8000", http_proxy=proxy.url)
        assert explicit.health()["status"] == "ok"
    # A proxy is asked for the absolute URL: requests sent both, not the keep-alive path.
    assert [r[1] for r in proxy.requests] == ["http://chroma.internal:8000/v1/health"] * 2


def test_the_json_fallback_on_415_holds_on_the_keep_alive_path():
    def refuse_binary(handler, body, n):
        if handler.headers.get("Content-Type") == QUERY_CONTENT_TYPE:
            _reply(handler, 415, json.dumps({"error": {"code": "unsupported_media_type", "message": "no"}}).encode())
        else:
            _reply(handler, 200, json.dumps({"results": [RESULT]}).encode())
        return True

    with KeepAlive(refuse_binary) as server:
        t = transport(server.url)
        request = QueryRequest.of("abc" * 13 + "d", np.ones((1, 3), np.float32), ["/a"])
        assert [r.input_uri for r in t.query(request)] == ["/a"]
        t.query(request)
    types = [r[2].get("Content-Type") for r in server.requests]
    assert types == [QUERY_CONTENT_TYPE, "application/json", "application/json"] and server.connections == 1


def _tls_files(tmp_path) -> tuple[ssl.SSLContext, str]:
    """A server context for 127.0.0.1 with a certificate of a fresh CA; the CA's file."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject: str, key, issuer, signer, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", ca_key, "test CA", ca_key, True)
    leaf = certificate("127.0.0.1", key, "test CA", ca_key, False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    return context, str(tmp_path / "ca.pem")


def test_tls_is_verified_against_the_ca_bundle_requests_would_use(tmp_path, monkeypatch):
    context, ca = _tls_files(tmp_path)
    with KeepAlive(tls=context) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
        t = HTTPTransport(load_config(chroma_url=server.url, environ={}))
        assert t._connections is not None and t.health()["status"] == "ok" and t.health()["status"] == "ok"
        assert server.connections == 1
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        untrusted = transport(server.url)  # certifi's bundle does not know this CA
        with pytest.raises(TransportError, match="SSLError"):
            untrusted.health()


def test_the_connection_reports_what_requests_would_raise_for_a_dead_port():
    conns = http_conn.Connections("http://127.0.0.1:9/v1", transport("http://127.0.0.1:9").session)
    with pytest.raises(requests.ConnectionError):
        conns.request("GET", "/health", timeout=(0.5, 0.5))


@pytest.mark.slow
def test_both_paths_give_identical_answers_from_a_real_service(tmp_path):
    server = ChromaServer(tmp_path / "data").start()
    try:
        fast = transport(server.url)
        plain = transport(server.url)
        plain._connections = None
        rng = np.random.default_rng(0)
        x = rng.normal(size=(300, 16)).astype(np.float32)
        header = BatchHeader("conn-test", EmbeddingSet.from_dict(SET), "training", 16, "t")
        labels = [{"label": f"c{i % 3}"} for i in range(300)]
        fast.upload(
            header,
            Records(x, [f"r{i}" for i in range(300)], [f"/{i}" for i in range(300)], labels, [None] * 300, [0.0] * 300),
        )
        queries = rng.normal(size=(20, 16)).astype(np.float32)
        request = QueryRequest.of(header.set_id, queries, [f"/q{i}" for i in range(20)])
        assert [r.to_dict() for r in fast.query(request)] == [r.to_dict() for r in plain.query(request)]
        assert fast.get_set(header.set_id) == plain.get_set(header.set_id)
    finally:
        server.stop()


class _CountingSocket:
    """A connected socket that counts its writes (everything else passes through)."""

    def __init__(self, sock: socket.socket):
        self._sock, self.writes = sock, 0

    def sendall(self, data, *args):
        self.writes += 1
        return self._sock.sendall(data, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_a_small_body_leaves_in_the_same_write_as_the_head():
    """One write wakes the service once; a head and then a body woke it twice (one more turn of its loop)."""
    bodies: list[bytes] = []

    def echo(handler, body, n):
        bodies.append(body)
        _reply(handler, 200, json.dumps({"results": [RESULT]}).encode())
        return True

    with KeepAlive(echo) as server:
        t = transport(server.url)
        request = QueryRequest.of("abc" * 13 + "d", np.ones((1, 3), np.float32), ["/a"])
        t.query(request)
        conn = t._connections._local.conn
        counting = conn.sock = _CountingSocket(conn.sock)
        t.query(request)
        assert counting.writes == 1
        large = QueryRequest.of("abc" * 13 + "d", np.ones((1, 20_000), np.float32), ["/a"])
        t.query(large)  # a large body goes in a write of its own, as http.client sends it
        assert counting.writes == 3
    assert bodies[0] == bodies[1] and len(bodies[2]) > 80_000
    assert server.requests[1][2]["Content-Length"] == str(len(bodies[1]))
