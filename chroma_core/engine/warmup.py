"""Load a set's model and calibrate it in the background after a large training upload.

At 100k x 384 the first query after an upload spent ~16 s loading the set's training records and ~25 s in the
calibration (1,000 exact leave-one-out searches), inside the request: over HTTP it could pass the client's
deadline. The engine now asks for both once a set's training data stops arriving: each training write of a set
with at least ``min_rows`` rows (re)starts that set's timer, so an upload sent in parts is warmed once, ``delay``
seconds after its last part. The calibration lands in the store's state as a query's would, so other processes
find it too. A query that comes first computes the same thing itself, under the same locks (the engine's model
lock, the model's calibration lock): the work is never done twice at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chroma_core.logs import logger

__all__ = ["Warmer"]


class Warmer:
    """Debounced background calls of ``warm(set_id)``, one timer per set."""

    def __init__(self, warm: Callable[[str], None], *, delay: float = 1.0) -> None:
        self._warm = warm
        self._delay = delay
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._running: dict[str, threading.Event] = {}

    def schedule(self, set_id: str) -> None:
        """Warm ``set_id`` ``delay`` seconds from now, unless another write of it comes first (then from then)."""
        with self._lock:
            if self._closed:
                return
            old = self._timers.pop(set_id, None)
            if old is not None:
                old.cancel()
            timer = threading.Timer(self._delay, self._run, args=(set_id,))
            timer.name = f"chroma-warm-{set_id[:8]}"
            timer.daemon = True
            self._timers[set_id] = timer
            self._running.setdefault(set_id, threading.Event()).clear()
            timer.start()

    def _run(self, set_id: str) -> None:
        with self._lock:
            if self._closed or threading.current_thread() is not self._timers.get(set_id):
                return  # replaced by a later write's timer, or the engine closed
        try:
            self._warm(set_id)
        except Exception as exc:  # the data is stored; the first query computes the model as it always did
            if not self._closed:
                logger.warning(
                    "cannot prepare the model of set %s in the background (%s); its first query will", set_id, exc
                )
        finally:
            with self._lock:
                if self._timers.get(set_id) is threading.current_thread():
                    del self._timers[set_id]
                    self._running[set_id].set()

    def wait(self, set_id: str, timeout: float | None = None) -> bool:
        """Until no warm-up of ``set_id`` is pending or running (True), or ``timeout`` passes (False)."""
        with self._lock:
            done = self._running.get(set_id)
        return True if done is None else done.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            for done in self._running.values():
                done.set()
