"""The one guard: always swallows, logs each distinct error once, counts, tells its hooks. And the audit helper."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

import chroma
from chroma_core import guard, hooks
from tests.chroma_core.delivery.audit import watch
from tests.conftest import SET


def fail(n: int) -> None:
    raise ValueError(f"bad input number {n}")  # a message that differs per input


def test_swallowed_always_counted_and_handed_to_hooks(internal_errors):
    seen = []
    hook = lambda what, exc: seen.append((what, type(exc)))  # noqa: E731
    guard.add_error_hook(hook)
    guard.add_error_hook(hook)  # once only
    try:
        with guard.capture_internal_exceptions("parsing"):
            fail(1)
    finally:
        guard.remove_error_hook(hook)
    with guard.capture_internal_exceptions("parsing"):
        fail(2)
    assert seen == [("parsing", ValueError)]  # removed hooks hear nothing more
    assert [what for what, _ in internal_errors.take()] == ["parsing", "parsing"]
    assert guard.error_counts() == {"parsing": 2}


def test_each_distinct_error_is_logged_once_then_counted(internal_errors, caplog):
    with caplog.at_level(logging.ERROR, logger="chroma"):
        for n in range(1000):
            with guard.capture_internal_exceptions("querying"):
                fail(n)
        with guard.capture_internal_exceptions("querying"):
            raise KeyError("another error: logged too")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in tracebacks] == [
        "querying failed; the host's call goes on without it"
    ] * 2  # the ValueError (once, not 1,000 times) and the KeyError
    repeats = [r.getMessage() for r in caplog.records if not r.exc_info]
    assert [m.split(", ")[-1].split(" ")[0] for m in repeats] == ["10", "100", "1000"]
    assert "bad input number 999" in repeats[-1]
    assert len(internal_errors.take()) == 1001


def test_a_broken_hook_does_not_break_the_guard(internal_errors):
    def broken(what, exc):
        raise RuntimeError("hook bug")

    guard.add_error_hook(broken)
    try:
        with guard.capture_internal_exceptions("saving"):
            fail(0)
    finally:
        guard.remove_error_hook(broken)
    assert len(internal_errors.take()) == 1


def test_base_exceptions_are_not_ours_to_swallow():
    with pytest.raises(KeyboardInterrupt), guard.capture_internal_exceptions("waiting"):
        raise KeyboardInterrupt


def test_a_failing_listener_goes_through_the_guard_and_the_session_goes_on(internal_errors):
    class Broken:
        def batch_saved(self, header, records):
            raise RuntimeError("listener bug")

    hooks.register("broken", Broken())
    try:
        session = chroma.TrainingSession(SET)
        session.log(input_uri="/a", embedding=np.ones(8))
        (saved,) = session.save()
    finally:
        hooks.unregister("broken")
    assert saved.count == 1
    ((what, exc),) = internal_errors.take()
    assert what == "listener 'broken' in batch_saved" and str(exc) == "listener bug"


def test_the_audit_helper_sees_io_on_the_watched_thread_only(tmp_path):
    with watch(thread=threading.current_thread()) as mine:
        (tmp_path / "f").write_text("x")
        other = threading.Thread(target=lambda: (tmp_path / "g").write_text("y"))
        other.start()
        other.join()
        with mine.pause():
            (tmp_path / "h").write_text("z")
    assert [(e, str(arg)) for e, _, arg in mine.events] == [("open", str(tmp_path / "f"))]
