"""The HTTP transport's retry policy, against scripted and real servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import chroma
from chroma_core.config import load_config
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.errors import ConfigError, TransportError
from chroma_core.records import BatchHeader, Records
from chroma_core.transport.http import HTTPTransport, RetryPolicy, _parse_retry_after
from chroma_core.types import QueryRequest
from tests.conftest import SET, ChromaServer, free_port

#: A script entry's body that is cut off after the head.
CUT = object()


class Scripted:
    """A real HTTP server on 127.0.0.1 that answers from a script of (status, headers, body), then 200 health."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = (
                    outer.script.pop(0) if outer.script else (200, {}, {"status": "ok", "version": "test"})
                )
                data = b"" if body is CUT else json.dumps(body).encode()
                if body is CUT:  # the head promises a body, then the connection ends: the server died answering
                    self.send_response(status)
                    self.send_header("Content-Length", "188")
                    self.end_headers()
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() waits for the loop to look, 0.5 s a server by default.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def transport(url: str, sleeps: list[float], **policy) -> HTTPTransport:
    return HTTPTransport(
        load_config(chroma_url=url, api_key="secret-key-xyz", environ={}),
        retry=RetryPolicy(**policy),
        sleep=sleeps.append,
    )


def test_503_with_retry_after_is_waited_for():
    busy = (503, {"Retry-After": "2"}, {"error": {"code": "shutting_down", "message": "busy"}})
    with Scripted([busy, busy]) as server:
        sleeps: list[float] = []
        assert transport(server.url, sleeps).health()["status"] == "ok"
    assert sleeps == [2.0, 2.0]
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [429, 502, 504])
def test_other_transient_statuses_back_off_exponentially(status):
    with Scripted([(status, {}, {})] * 3) as server:
        sleeps: list[float] = []
        transport(server.url, sleeps, initial_wait=0.5, jitter=0.0).health()
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_body_cut_off_mid_answer_is_retried_then_mapped():
    with Scripted([(200, {}, CUT)]) as server:
        sleeps: list[float] = []
        assert transport(server.url, sleeps, jitter=0.0).health()["status"] == "ok"
    assert len(server.requests) == 2 and len(sleeps) == 1
    cut = Scripted([(200, {}, CUT)] * 5)
    with cut as server, pytest.raises(TransportError, match="cannot reach the Chroma service") as caught:
        transport(server.url, [], attempts=3).health()
    assert "ChunkedEncodingError" in str(caught.value) and len(server.requests) == 3


def test_client_errors_are_not_retried_and_are_mapped():
    err = (422, {}, {"error": {"code": "dimension_mismatch", "message": "dimension 3, set holds 4"}})
    with Scripted([err]) as server:
        sleeps: list[float] = []
        with pytest.raises(chroma.DimensionMismatchError, match="dimension 3"):
            transport(server.url, sleeps).query(QueryRequest.of("abc" * 13 + "d", np.ones((1, 3), np.float32), ["/a"]))
    assert sleeps == [] and len(server.requests) == 1


def test_attempts_are_bounded():
    with Scripted([(503, {}, {})] * 10) as server:
        sleeps: list[float] = []
        with pytest.raises(TransportError, match="still answering HTTP 503 after 4 attempts"):
            transport(server.url, sleeps, attempts=4).health()
    assert len(server.requests) == 4 and len(sleeps) == 3


def test_total_deadline_caps_a_long_retry_after():
    with Scripted([(503, {"Retry-After": "3600"}, {})] * 3) as server:
        sleeps: list[float] = []
        with pytest.raises(TransportError):
            transport(server.url, sleeps, deadline=5.0).health()
    # Retry-After is capped (max_retry_after) and a wait that would pass the deadline is not started.
    assert all(s <= 30.0 for s in sleeps) and len(server.requests) == 1


def test_connection_refused_is_retried_then_mapped():
    sleeps: list[float] = []
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError, match="cannot reach the Chroma service") as info:
        transport(dead, sleeps, attempts=3).list_sets()
    assert len(sleeps) == 2
    assert "secret-key-xyz" not in str(info.value) and "secret-key-xyz" not in repr(transport(dead, []))


def test_headers_key_proxy_and_gzip_upload():
    ok = (
        200,
        {},
        {"batch_id": "b", "set_id": "s", "mode": "training", "read": 1, "stored": 1, "duplicates": 0, "problems": []},
    )
    with Scripted([ok, ok]) as server:
        config = load_config(chroma_url=server.url, api_key="secret-key-xyz", application_id="app", environ={})
        header = BatchHeader("b", EmbeddingSet.from_dict(SET), "training", 2, "t")
        records = Records(np.ones((1, 2), np.float32), ["b:0"], ["/a"], [None], [None], [0.0])
        HTTPTransport(config, retry=RetryPolicy(compress=True)).upload(header, records)
        HTTPTransport(config).upload(header, records)  # loopback: not gzipped by default
    method, path, headers = server.requests[0]
    assert (method, path) == ("POST", "/v1/batches")
    assert headers["Authorization"] == "Bearer secret-key-xyz"
    assert headers["X-Chroma-Application-Id"] == "app"
    assert headers["Content-Encoding"] == "gzip" and headers["Idempotency-Key"] == "b"
    assert "Content-Encoding" not in server.requests[1][2]
    t = HTTPTransport(load_config(chroma_url="http://127.0.0.1:1", http_proxy="http://127.0.0.1:3128", environ={}))
    assert t.session.proxies == {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
    assert HTTPTransport(load_config(chroma_url="http://chroma.internal:8000", environ={})).compress


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("", None), (None, None), ("soon", None)])
def test_retry_after_parsing(value, seconds):
    assert _parse_retry_after(value) == seconds


def test_retry_after_http_date():
    import email.utils
    import time

    assert 55 <= _parse_retry_after(email.utils.formatdate(time.time() + 60, usegmt=True)) <= 60


@pytest.mark.slow
def test_server_killed_and_restarted_mid_stream_holds_every_record_once(tmp_path):
    server = ChromaServer(tmp_path / "data").start()
    n_batches, per_batch, dim = 40, 25, 16
    rng = np.random.default_rng(0)
    done = threading.Event()
    progress = {"sent": 0}

    def chaos():
        for when in (8, 24):
            while progress["sent"] < when and not done.is_set():
                threading.Event().wait(0.01)
            server.kill()
            threading.Event().wait(0.3)
            server.start()

    killer = threading.Thread(target=chaos)
    killer.start()
    try:
        t = HTTPTransport(
            load_config(chroma_url=server.url, environ={}),
            retry=RetryPolicy(attempts=30, deadline=60.0, initial_wait=0.1, max_wait=1.0),
        )
        es = EmbeddingSet.from_dict(SET)
        for b in range(n_batches):
            header = BatchHeader(f"batch-{b}", es, "training", dim, "t")
            ids = [f"batch-{b}:{i}" for i in range(per_batch)]
            records = Records(
                rng.normal(size=(per_batch, dim)).astype(np.float32),
                ids,
                [f"/{b}/{i}" for i in range(per_batch)],
                [None] * per_batch,
                [None] * per_batch,
                [0.0] * per_batch,
            )
            t.upload(header, records)
            progress["sent"] += 1
    finally:
        done.set()
        killer.join()
    try:
        info = t.get_set(es.id)
        assert info is not None and info.training == n_batches * per_batch
        assert "SIGKILL" not in server.log.read_text()
    finally:
        server.stop()
    from chroma_core.engine.store import SQLiteStore

    store_dirs = list((tmp_path / "data" / "applications").iterdir())
    store = SQLiteStore(store_dirs[0])
    uris = [r.input_uri for r in store.records(es.id, "training", 0, n_batches * per_batch)]
    assert len(set(uris)) == n_batches * per_batch


# ---- the address, the deadline, what is logged and what never is ----------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_the_service_url_works_with_or_without_its_version(suffix):
    with Scripted([]) as server:
        assert transport(server.url + suffix, []).health()["status"] == "ok"
        assert server.requests[0][1] == "/v1/health"


def test_another_api_version_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"speaks v1: give the service's address without the version .*'http://h:1'"):
        transport("http://h:1/v2", [])


class Silent:
    """A server on 127.0.0.1 that accepts connections and never answers."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_a_query_session_gives_up_at_its_deadline_and_says_what_to_do(caplog):
    with Silent() as server, chroma.QuerySession(SET, chroma_server_url=server.url, deadline=0.5, store=False) as q:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            q.log(input_uri="/q", embedding=np.ones(4, np.float32))
        elapsed = time.monotonic() - started
    # Each attempt's timeouts shrink to what is left of the deadline (not 30 s of read timeout); the bound is loose.
    assert elapsed < 5, elapsed
    assert "0.5 s deadline" in str(info.value) and "@recommend" in str(info.value)


def test_retries_are_logged_at_warning_once_per_outage(caplog):
    dead = transport(f"http://127.0.0.1:{free_port()}", [], attempts=3)
    with caplog.at_level(logging.DEBUG, logger="chroma"):
        for _ in range(2):
            with pytest.raises(TransportError):
                dead.list_sets()
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.WARNING] + [logging.DEBUG] * 3


def test_a_proxy_password_never_reaches_an_error():
    config = load_config(
        chroma_url="http://chroma.internal:8000", http_proxy=f"http://me:hunter2@127.0.0.1:{free_port()}", environ={}
    )
    with pytest.raises(TransportError) as info:
        HTTPTransport(config, retry=RetryPolicy(attempts=1)).list_sets()
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(config)
    with pytest.raises(ConfigError) as bad:
        load_config(http_proxy="http://me:hunter2@proxy:99999", environ={})
    assert "hunter2" not in str(bad.value) and "port" in str(bad.value)


def test_credentials_in_chroma_url_are_refused_naming_api_key():
    with pytest.raises(ConfigError, match="api_key") as info:
        load_config(chroma_url="http://me:hunter2@chroma.internal:8000", environ={})
    assert "hunter2" not in str(info.value)


def test_the_environment_is_read_once_for_the_service_host(monkeypatch, tmp_path):
    """Proxies and CA bundles from the environment apply as requests applies them, read when the transport is made."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3129")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    t = HTTPTransport(load_config(chroma_url="http://chroma.internal:8000", environ={}))
    assert not t.session.trust_env and t.session.proxies.get("http") == "http://127.0.0.1:3129"
    assert t.session.verify == str(tmp_path / "ca.pem")
    monkeypatch.setenv("NO_PROXY", "chroma.internal")
    bypass = HTTPTransport(load_config(chroma_url="http://chroma.internal:8000", environ={}))
    assert "http" not in bypass.session.proxies
    explicit = HTTPTransport(
        load_config(chroma_url="http://chroma.internal:8000", http_proxy="http://127.0.0.1:3128", environ={})
    )
    assert explicit.session.proxies == {"http": "http://127.0.0.1:3128", "https": "http://127.0.0.1:3128"}
