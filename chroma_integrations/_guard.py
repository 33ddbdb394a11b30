"""Our own errors inside an integration are logged and swallowed, never raised into the host's code.

In test mode (``CHROMA_TEST_MODE=1``, which the test suite sets) they are re-raised instead, so that a bug in
Chroma fails the tests rather than disappearing into a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

__all__ = ["capture_internal_exceptions", "internal_errors", "test_mode"]

logger = logging.getLogger("chroma")
_lock = threading.Lock()
_errors = {"count": 0}


def test_mode() -> bool:
    return os.environ.get("CHROMA_TEST_MODE") == "1"


def internal_errors() -> int:
    """How many internal errors have been swallowed in this process (visible for monitoring)."""
    return _errors["count"]


@contextlib.contextmanager
def capture_internal_exceptions(what: str) -> Iterator[None]:
    """Run Chroma's own work; on error, log it and carry on (re-raise in test mode)."""
    try:
        yield
    except Exception:
        if test_mode():
            raise
        with _lock:
            _errors["count"] += 1
        logger.exception("chroma: %s failed; the host's call goes on without it", what)
