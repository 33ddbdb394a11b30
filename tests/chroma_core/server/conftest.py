"""Fixtures of the service tests: a real older service to fall back against, and what a client sent."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import conftest
from tests.conftest import ROOT, ChromaServer

#: main just before the binary forms existed: a real older service, which knows only JSON queries and JSONL batches.
OLDER_SERVICE = "14c0d289678c0964a27e3973616233afdbbb3c5c"


@pytest.fixture
def older_service(tmp_path, monkeypatch) -> Iterator[ChromaServer]:
    """``chroma serve`` from the tree of :data:`OLDER_SERVICE` (its source is in ``tmp_path / "older"``), stopped after."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLDER_SERVICE, "chroma", "chroma_core"], capture_output=True
    )
    if archive.returncode:
        pytest.skip(f"the older service's commit is not in this checkout: {archive.stderr.decode()[:200]}")
    tree = tmp_path / "older"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    # The server runs in ROOT: there, `python -m chroma` imports the older tree's packages before any installed.
    with monkeypatch.context() as patch:
        patch.setattr(conftest, "ROOT", tree)
        server = ChromaServer(tmp_path / "older-data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def content_types(monkeypatch) -> Callable[[Any], list[str]]:
    """``content_types(transport)`` returns a list that fills with the Content-Type of each request it sends."""

    def record(transport: Any) -> list[str]:
        sent: list[str] = []
        send = transport._send  # each attempt, on either of the transport's paths

        def recording(method, path, timeout, kwargs):
            sent.append(kwargs.get("headers", {}).get("Content-Type", ""))
            return send(method, path, timeout, kwargs)

        monkeypatch.setattr(transport, "_send", recording)
        return sent

    return record
