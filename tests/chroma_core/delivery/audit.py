"""What a thread does, seen through Python's audit hooks (``sys.addaudithook``): files opened, directories listed,
sockets connected. Nothing is replaced; the real calls run and are only watched.

>>> with watch(thread=threading.current_thread()) as seen:   # doctest: +SKIP
...     predict(x)
>>> assert seen.events == []
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

IO_EVENTS = frozenset({"open", "os.scandir", "os.listdir", "os.mkdir", "os.rename", "os.remove", "socket.connect"})
SCAN_EVENTS = frozenset({"os.scandir", "os.listdir"})

_watches: list[Watch] = []
_installed = False
_install_lock = threading.Lock()


class Watch:
    """The audited events seen while it was active, as ``(event, thread name, first argument)``."""

    def __init__(self, thread: threading.Thread | None, kinds: frozenset[str]) -> None:
        self.thread = thread
        self.kinds = kinds
        self.events: list[tuple[str, str, Any]] = []
        self.paused = False

    def see(self, event: str, args: tuple[Any, ...]) -> None:
        if self.paused or event not in self.kinds:
            return
        current = threading.current_thread()
        if self.thread is None or current is self.thread:
            self.events.append((event, current.name, args[0] if args else None))

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Stop looking for a while (the test's own I/O: starting a server)."""
        self.paused = True
        try:
            yield
        finally:
            self.paused = False

    def of(self, *kinds: str) -> list[tuple[str, str, Any]]:
        return [e for e in self.events if e[0] in kinds]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _watches:  # the hook stays installed for the process: keep it to one test when nobody watches
        for w in list(_watches):
            w.see(event, args)


@contextlib.contextmanager
def watch(*, thread: threading.Thread | None = None, kinds: frozenset[str] = IO_EVENTS) -> Iterator[Watch]:
    """Record ``kinds`` of events done by ``thread`` (any thread when None) inside the block."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)  # audit hooks cannot be removed: one, installed once
            _installed = True
    w = Watch(thread, kinds)
    _watches.append(w)
    try:
        yield w
    finally:
        _watches.remove(w)
