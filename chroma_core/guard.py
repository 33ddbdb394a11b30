"""The one guard around Chroma's own work inside someone else's process: our errors never reach the host.

>>> with capture_internal_exceptions("logging an embedding"):   # doctest: +SKIP
...     session.log(...)

Whatever goes wrong inside the block (a bug in Chroma, a broken extractor) is swallowed, always: there is no mode
in which it is re-raised, so tests run the path users run. Each swallowed error

- is logged once per distinct error (what failed, its type, where it was raised) with its traceback, and after
  that only counted (a line at the 10th, 100th, 1000th... repeat), so one error per input cannot flood a log;
- is counted per ``what`` (:func:`error_counts`, for monitoring);
- is handed to every hook registered with :func:`add_error_hook` (the test suite's autouse fixture registers one
  and fails a test that swallowed anything it did not expect, as sentry-python's ``internal_exceptions`` does).

The background worker's thread, the session listeners (``chroma_core.hooks``) and the integrations all use it.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator

from chroma_core.logs import logger

__all__ = [
    "ErrorHook",
    "add_error_hook",
    "capture_internal_exception",
    "capture_internal_exceptions",
    "error_counts",
    "remove_error_hook",
    "reset",
]


ErrorHook = Callable[[str, BaseException], None]
"""Called as ``hook(what, exc)`` for every error the guard swallows, in the thread where it was swallowed."""

_lock = threading.Lock()
_hooks: list[ErrorHook] = []
_counts: collections.Counter[str] = collections.Counter()  # per ``what``
_seen: collections.Counter[tuple[str, str, str, int]] = collections.Counter()  # per distinct error


def add_error_hook(hook: ErrorHook) -> None:
    """Call ``hook(what, exc)`` for each error swallowed from now on (adding the same hook twice calls it once)."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)


def remove_error_hook(hook: ErrorHook) -> None:
    """Stop calling ``hook``; removing one that was never added does nothing."""
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def error_counts() -> dict[str, int]:
    """How many internal errors were swallowed in this process, per ``what`` (the guard's label)."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget the counts and which errors were already logged (the next of each is logged with its traceback)."""
    with _lock:
        _counts.clear()
        _seen.clear()


@contextlib.contextmanager
def capture_internal_exceptions(what: str) -> Iterator[None]:
    """Run Chroma's own work; an ``Exception`` raised inside is swallowed (see the module docstring).

    ``what`` names the work in the log line, as in "<what> failed; the host's call goes on without it".
    """
    try:
        yield
    except Exception as exc:
        capture_internal_exception(what, exc)


def capture_internal_exception(what: str, exc: BaseException) -> None:
    """Record an error already caught (log it once, count it, tell the hooks); never raises."""
    key = _key(what, exc)
    with _lock:
        _counts[what] += 1
        _seen[key] += 1
        repeats = _seen[key]
        hooks = list(_hooks)
    if repeats == 1:
        logger.error("%s failed; the host's call goes on without it", what, exc_info=exc)
    elif _is_power_of_ten(repeats):
        logger.error(
            "%s failed again (%s: %s), %d times so far; the first traceback was logged above",
            what,
            type(exc).__name__,
            exc,
            repeats,
        )
    for hook in hooks:
        try:
            hook(what, exc)
        except Exception:
            # A broken hook must not turn the guard into a source of errors; nothing above us could take it.
            logger.exception("an error hook failed")


def _key(what: str, exc: BaseException) -> tuple[str, str, str, int]:
    # Distinct by what failed, its type and where it was raised, not by its message: a message that names each
    # input would otherwise make every repeat look new.
    tb = exc.__traceback__
    if tb is None:
        return what, type(exc).__qualname__, "", 0
    while tb.tb_next is not None:
        tb = tb.tb_next
    return what, type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
