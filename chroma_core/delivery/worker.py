"""A Sentry-sized background worker: a bounded queue, one daemon thread, counted drops, fork safety.

``submit()`` costs about a deque append and never blocks. The thread wakes when the first item arrives, sleeps
again until ``linger`` seconds have passed since (or the queue is half full, or someone flushes or closes), then
hands everything queued to a :class:`Handler`, ``batch_size`` items at a time. Coalescing by time keeps the thread
off the host's back while a burst of calls lasts (CPython runs one thread at a time): it does its work after.
Between batches the handler may do work of its own (:meth:`Handler.backlog`, e.g. replaying spilled files), on a
timer it chooses.

Nothing polls: the thread, :meth:`Worker.flush` and :meth:`Worker.close` all wait on one ``threading.Condition``,
and a submitter takes its lock only to wake the thread when it waits for exactly that (the first item, or a half
full queue). After ``fork()`` (gunicorn workers) the child gets a fresh queue, lock and thread on first use; what
the parent had queued stays the parent's to send.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from chroma_core.guard import capture_internal_exception
from chroma_core.logs import logger

__all__ = ["Handler", "Tally", "Worker"]

T = TypeVar("T")


class Tally:
    """Counters, and drops counted per reason; the first drop of each reason is warned about (once)."""

    def __init__(self, what: str, where: str) -> None:
        self.what = what  # "production records"
        self.where = where  # where to look: "BackgroundWorker.stats()"
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._dropped: collections.Counter[str] = collections.Counter()

    def add(self, name: str, n: int = 1, *, warning: str | None = None) -> None:
        """Count ``n`` more ``name``; log ``warning`` the first time (a reason to look, said once)."""
        with self._lock:
            first = name not in self._counts
            self._counts[name] += n
        if first and warning:
            logger.warning("%s; see %s", warning, self.where)

    def drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            first = reason not in self._dropped
            self._dropped[reason] += n
        if first:
            logger.warning("dropping %s (%s); see %s", self.what, reason, self.where)

    def snapshot(self) -> dict[str, Any]:
        """``{"dropped": {reason: n}, **counts}``."""
        with self._lock:
            return {"dropped": dict(self._dropped), **self._counts}

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # the parent's may have been held by a thread that does not exist here


class Handler(Generic[T]):
    """What a :class:`Worker`'s thread does. Every method runs on that thread, inside the internal-error guard."""

    def start(self) -> None:
        """Called first on each new thread (in each process): set up per-process state (connections, files)."""

    def process(self, items: list[T]) -> None:
        """Handle one batch of submitted items."""
        raise NotImplementedError

    def backlog(self, stopping: bool) -> float | None:
        """Do work of the handler's own that is due; return seconds until it wants to be called again, or
        ``None`` when it has nothing left (a :meth:`Worker.flush` waits for that). ``stopping``: last call."""
        return None


_instances: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_instances):
        worker._reset_for_process()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Worker(Generic[T]):
    """See the module docstring. ``name`` names the thread; drops and counts go to ``tally``."""

    def __init__(
        self,
        handler: Handler[T],
        *,
        name: str,
        tally: Tally,
        queue_size: int,
        batch_size: int = 1,
        linger: float = 0.0,
    ) -> None:
        self.handler = handler
        self.name = name
        self.tally = tally
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.linger = linger
        # Before linger is up, a queue this long is worked on at once, so that a burst does not fill it to drops.
        self.high_water = max(batch_size, queue_size // 2)
        self._closed = False
        self._reset_for_process()
        _instances.add(self)

    def _reset_for_process(self) -> None:
        self._pid = -1  # no thread in this process yet
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # A deque, not queue.Queue: append and popleft are atomic under the GIL and take no lock, which keeps
        # submit() to a few hundred nanoseconds. Only the thread pops, and only under the lock.
        self._queue: collections.deque[T] = collections.deque()
        self._thread: threading.Thread | None = None
        self._wake_at = 0  # the queue length at which a submitter must wake the thread; 0: it is not waiting
        self._first_seen: float | None = None  # when the thread first saw the oldest queued item
        self._draining = False  # taking batches until the queue is empty
        self._in_flight = 0
        self._processed = 0
        self._settled = False  # the handler's backlog is empty (as of its last call)
        self._flushing = 0  # callers waiting in flush(): send partial batches now
        self._stopping = False
        self._done = False
        self.tally._after_fork()

    # ---- the host's side: cheap, never raising, never blocking ------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def started(self) -> bool:
        """Whether this process has a thread for this worker (flush and close only wait for one that exists)."""
        return self._pid == os.getpid() and self._thread is not None

    def submit(self, item: T) -> bool:
        """Queue ``item``; False (and counted) if it had to be dropped. Never blocks."""
        if self._closed:
            self.tally.drop("closed")
            return False
        if self._pid != os.getpid():
            self._start()
        queue = self._queue
        if len(queue) >= self.queue_size:
            self.tally.drop("queue_full")
            return False
        queue.append(item)
        # The thread publishes _wake_at before it re-checks the queue and waits, so either it sees this item or
        # this read sees its _wake_at: a wake-up is never lost. The submitter that wakes it clears _wake_at, so
        # the others (until the thread runs again) do not take the lock too.
        wake_at = self._wake_at
        if wake_at and len(queue) >= wake_at:
            with self._cond:
                self._wake_at = 0
                self._cond.notify_all()
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down: nothing can be sent any more
                return
            self._thread = thread
            self._pid = os.getpid()

    @property
    def pending(self) -> int:
        """Items submitted and not yet processed (queued, or in the batch being processed now)."""
        return len(self._queue) + self._in_flight

    def stats(self) -> dict[str, Any]:
        """``queued`` now, drops per reason, and the handler's counters."""
        return {"queued": len(self._queue), **self.tally.snapshot()}

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far was processed and the handler's backlog is empty; False if
        ``timeout`` (seconds) passed first. Partial batches go at once while someone waits here."""
        if not self.started:
            return True
        with self._cond:
            target = self._processed + self._in_flight + len(self._queue)
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._processed >= target and self._settled, timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 5.0) -> bool:
        """Stop accepting items, process what is queued (and one last backlog pass), within ``timeout``.

        False if the thread was still busy when ``timeout`` passed (it carries on, as a daemon, until it is done).
        """
        with self._cond:
            self._closed = True
            self._stopping = True
            self._cond.notify_all()
            if not self.started:
                return True
            return self._cond.wait_for(lambda: self._done, timeout)

    # ---- the thread -----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        self._guarded("starting", self.handler.start)
        due: float | None = 0.0  # when the handler's backlog wants its next call; at start-up, at once
        while True:
            batch, last = self._next_batch(due)
            if batch:
                self._guarded("processing", self.handler.process, batch)
            delay = self._guarded("background work", self.handler.backlog, last, failed=1.0)  # retry in a second
            with self._cond:
                self._processed += len(batch)
                self._in_flight = 0
                self._settled = delay is None
                due = None if delay is None else time.monotonic() + delay
                self._done = last
                self._cond.notify_all()
            if last:
                return

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any, failed: Any = None) -> Any:
        """Call the handler; what it raises is an internal error (logged once, counted): the thread goes on."""
        try:
            return fn(*args)
        except Exception as exc:
            self.tally.add("worker_errors")
            capture_internal_exception(f"{self.name}: {what}", exc)
            return failed

    def _next_batch(self, due: float | None) -> tuple[list[T], bool]:
        """Wait for a batch to be ready (or the handler's timer, or the end) and take it; the thread's only wait.

        The flag is True for the last pass: stopping, with nothing left in the queue after this batch.
        """
        queue = self._queue
        with self._cond:
            while True:
                now = time.monotonic()
                n = len(queue)
                if n and self._first_seen is None:
                    self._first_seen = now
                if n and (
                    self._draining
                    or n >= self.high_water
                    or self._stopping
                    or self._flushing
                    or now - (self._first_seen or now) >= self.linger
                ):
                    batch = [queue.popleft() for _ in range(min(n, self.batch_size))]
                    # Once at work, the thread empties the queue: what is left has waited already.
                    self._draining = bool(queue)
                    if not queue:
                        self._first_seen = None
                    self._in_flight = len(batch)
                    return batch, self._stopping and not queue
                if self._stopping or (due is not None and now >= due):
                    return [], self._stopping
                timeout: float | None = None
                if n:
                    timeout = (self._first_seen or now) + self.linger - now
                if due is not None:
                    timeout = due - now if timeout is None else min(timeout, due - now)
                self._wake_at = self.high_water if n else 1
                if len(queue) < self._wake_at:  # re-check after publishing _wake_at (see submit)
                    self._cond.wait(timeout)
                self._wake_at = 0
