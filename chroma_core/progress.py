"""Progress of long work: a tqdm bar on a terminal, nothing elsewhere, and an INFO line for what took long.

``progress=None`` (the default everywhere) means "a bar if standard error is a terminal"; ``False`` never shows
one (and ``CHROMA_PROGRESS=0`` turns them off for a whole process); ``True`` always does. Work that took more than
a second says so at INFO on the ``chroma`` logger, bar or not, so that logs show where time went.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from chroma_core.logs import logger

__all__ = ["Progress", "progress_bar", "timed"]

_SLOW_S = 1.0


class Progress:
    """What long work reports to: ``update(n)`` as it goes, ``close()`` at the end. Quiet unless a bar is shown."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _wanted(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if os.environ.get("CHROMA_PROGRESS") == "0":
        return False
    return sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(
    total: int | None, what: str, unit: str = "records", *, progress: bool | None = None
) -> Iterator[Progress]:
    """A bar for ``total`` units of ``what`` (see the module docstring), closed on leaving; logged if it took long."""
    bar = None
    if _wanted(progress):
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - tqdm is a dependency; a trimmed environment just gets no bar
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=total, desc=what, unit=unit, unit_scale=True, leave=False, file=sys.stderr)
    tracker = Progress(bar)
    with timed(what):
        try:
            yield tracker
        finally:
            tracker.close()


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    """Log ``what`` at INFO with its duration if it took more than a second."""
    started = time.perf_counter()
    yield
    elapsed = time.perf_counter() - started
    if elapsed > _SLOW_S:
        logger.info("%s took %.1f s", what, elapsed)
