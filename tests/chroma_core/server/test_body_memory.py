"""spooled_body keeps a small batch in memory, within one budget for the process, and spools any other to disk."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("starlette")

from chroma_core.server import body as body_module
from chroma_core.server.body import spooled_body
from chroma_core.server.settings import Limits
from chroma_core.server.wire import ApiError


class _Request:
    def __init__(self, pieces: list[bytes], declared: int | None = None) -> None:
        self._pieces = pieces
        self.headers = {} if declared is None else {"content-length": str(declared)}

    async def stream(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def _read(tmp_path, pieces: list[bytes], declared: int | None = None, limits: Limits | None = None):
    """(the body read back, whether it was a spool file, the budget held while it was open)."""

    async def run() -> tuple[bytes, bool, int]:
        async with spooled_body(_Request(pieces, declared), limits or Limits(), tmp_path) as f:
            return f.read(), not isinstance(f, io.BytesIO), body_module._BUDGET.held

    return asyncio.run(run())


def test_a_small_body_stays_in_memory_and_gives_its_budget_back(tmp_path):
    data, spooled, held = _read(tmp_path, [b"ab", b"cd", b"e"])
    assert (data, spooled, held) == (b"abcde", False, 5)
    assert body_module._BUDGET.held == 0 and not list(tmp_path.iterdir())


def test_a_body_that_grows_past_the_memory_bound_moves_to_disk_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(body_module, "MEMORY_BODY_BYTES", 4)
    data, spooled, held = _read(tmp_path, [b"ab", b"cd", b"ef", b"g"])
    assert (data, spooled, held) == (b"abcdefg", True, 0)
    assert body_module._BUDGET.held == 0


def test_a_body_declared_large_is_spooled_from_its_first_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(body_module, "MEMORY_BODY_BYTES", 4)
    assert _read(tmp_path, [b"abcdef"], declared=6)[:2] == (b"abcdef", True)


def test_past_the_process_budget_bodies_go_to_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(body_module, "MEMORY_BODIES_BYTES", 10)
    body_module._BUDGET.take(8)  # another body, being received
    try:
        assert _read(tmp_path, [b"abc"])[:2] == (b"abc", True)
    finally:
        body_module._BUDGET.give(8)
    assert _read(tmp_path, [b"abc"])[:2] == (b"abc", False)


def test_a_body_over_the_limit_is_refused_and_gives_its_budget_back(tmp_path):
    with pytest.raises(ApiError) as refused:
        _read(tmp_path, [b"a" * 60, b"b" * 60], limits=Limits(max_body_bytes=100))
    assert refused.value.code == "payload_too_large"
    assert body_module._BUDGET.held == 0
