"""The generic background worker: batching, waiting on a condition (never polling), flush, close, drops, fork."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time

import pytest

from chroma_core.delivery import Handler, Tally, Worker
from tests.chroma_core.delivery.audit import watch


class Recording(Handler[int]):
    """Keeps the batches it gets; holds each batch until ``gate`` is set (in the process that made it)."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.owner = os.getpid()
        if not hold:
            self.gate.set()

    def process(self, items: list[int]) -> None:
        self.entered.set()
        if os.getpid() == self.owner:
            self.gate.wait(30)
        self.batches.append(list(items))


def make(handler: Handler[int], **kw) -> Worker[int]:
    kw.setdefault("queue_size", 1000)
    return Worker(handler, name="test-worker", tally=Tally("test items", "the test"), **kw)


def innermost(thread: threading.Thread) -> tuple[str, str]:
    frame = sys._current_frames()[thread.ident]
    return frame.f_code.co_name, os.path.basename(frame.f_code.co_filename)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def thread_of(worker: Worker[int]) -> threading.Thread:
    assert worker._thread is not None
    return worker._thread


def test_a_half_full_queue_goes_at_once_and_the_rest_on_flush():
    handler = Recording()
    worker = make(handler, queue_size=8, batch_size=3, linger=60.0)  # on its own, work would wait a minute
    for i in range(4):
        assert worker.submit(i)
    assert handler.entered.wait(10)  # the 4th submit (half the queue) woke the thread: no minute-long wait
    assert wait_until(lambda: worker.pending == 0)
    for i in range(4, 10):
        worker.submit(i)
    assert worker.flush(10)  # a flush sends what is queued now, in batches of batch_size
    assert handler.batches == [[0, 1, 2], [3], [4, 5, 6], [7, 8, 9]]
    assert worker.stats() == {"queued": 0, "dropped": {}}


def test_a_partial_batch_goes_after_linger():
    handler = Recording()
    worker = make(handler, batch_size=100, linger=0.05)
    worker.submit(1)
    assert wait_until(lambda: handler.batches == [[1]])


def test_flush_and_the_idle_thread_wait_on_the_condition():
    handler = Recording(hold=True)
    worker = make(handler, batch_size=1)
    worker.submit(1)
    assert handler.entered.wait(10)
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(worker.flush(30)))
    flusher.start()
    # The flusher sleeps in Condition.wait (threading.py), not in a time.sleep loop.
    assert wait_until(lambda: innermost(flusher) == ("wait", "threading.py"))
    handler.gate.set()
    flusher.join(10)
    assert result == [True]
    # Idle, the worker's thread waits in Condition.wait too; and over a second it does nothing at all.
    thread = thread_of(worker)
    assert wait_until(lambda: innermost(thread) == ("wait", "threading.py"))
    before = sys._current_frames()[thread.ident]  # held, so a new call's frame could not be this object
    time.sleep(1.0)
    assert sys._current_frames()[thread.ident] is before  # the same wait, never woken: no polling


def test_close_processes_what_is_queued_then_drops_are_counted(caplog):
    handler = Recording()
    worker = make(handler, batch_size=3, linger=60.0)
    for i in range(7):
        worker.submit(i)
    assert worker.close(10)
    assert [i for b in handler.batches for i in b] == list(range(7))
    with caplog.at_level(logging.WARNING, logger="chroma"):
        assert not worker.submit(99)
        assert not worker.submit(100)
    assert worker.stats()["dropped"] == {"closed": 2}
    assert caplog.text.count("dropping test items (closed)") == 1  # warned once per reason


def test_a_full_queue_drops_and_never_blocks():
    handler = Recording(hold=True)
    worker = make(handler, queue_size=5, batch_size=1)
    worker.submit(0)
    assert handler.entered.wait(10)  # the thread is busy with item 0
    accepted = [worker.submit(i) for i in range(1, 11)]
    assert accepted == [True] * 5 + [False] * 5
    assert worker.stats()["dropped"] == {"queue_full": 5}
    handler.gate.set()
    assert worker.flush(10)


def test_submit_does_no_io_and_takes_no_lock_while_the_thread_is_busy():
    handler = Recording(hold=True)
    worker = make(handler, batch_size=1)
    worker.submit(0)
    assert handler.entered.wait(10)
    worker._lock.acquire()  # were submit to take the lock, it would hang here
    try:
        with watch(thread=threading.current_thread()) as caller:
            assert all(worker.submit(i) for i in range(1, 100))
    finally:
        worker._lock.release()
    assert caller.events == []
    handler.gate.set()
    assert worker.flush(10)
    assert sorted(i for b in handler.batches for i in b) == list(range(100))


def test_errors_in_the_handler_go_to_the_guard_and_the_thread_goes_on(internal_errors):
    class Flaky(Recording):
        def process(self, items: list[int]) -> None:
            if items == [1]:
                raise RuntimeError("handler bug")
            super().process(items)

    handler = Flaky()
    worker = make(handler, batch_size=1)
    for i in range(3):
        worker.submit(i)
    assert worker.flush(10)
    assert handler.batches == [[0], [2]]
    ((what, exc),) = internal_errors.take()
    assert what == "test-worker: processing" and str(exc) == "handler bug"
    assert worker.stats()["worker_errors"] == 1


def test_flush_waits_for_the_backlog_too():
    class Backlogged(Recording):
        def __init__(self) -> None:
            super().__init__()
            self.left = 3

        def backlog(self, stopping: bool) -> float | None:
            if self.left == 0:
                return None
            self.left -= 1
            return 0.01  # call again shortly

    handler = Backlogged()
    worker = make(handler)
    worker.submit(1)
    assert worker.flush(10)
    assert handler.left == 0


def _child(worker: Worker[int], handler: Recording, out) -> None:
    worker.submit(100)
    flushed = worker.flush(10)
    out.put((flushed, handler.batches, worker.stats()["queued"]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_after_fork_the_child_has_its_own_queue_and_thread():
    handler = Recording(hold=True)
    worker = make(handler, batch_size=1)
    worker.submit(1)
    assert handler.entered.wait(10)  # the parent's thread holds item 1 (and the lock, now and then)
    worker.submit(2)  # queued in the parent at fork time
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child, args=(worker, handler, out))
    child.start()
    flushed, batches, queued = out.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    assert flushed and batches == [[100]] and queued == 0  # only its own item; the parent's stay the parent's
    handler.gate.set()
    assert worker.flush(10)
    assert handler.batches == [[1], [2]]
