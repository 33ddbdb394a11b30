"""The ``chroma`` logger, and what an application that configured no logging sees of it.

Messages carry no ``chroma:`` prefix of their own: an application's handlers already name the logger
(``WARNING:chroma:...`` with ``logging.basicConfig()``), and a prefix in the message printed it twice. When the
application has configured no handler at all, Python would print bare messages through its last-resort handler;
:class:`FallbackHandler` prints WARNING and above as ``chroma: <message>`` instead, so that a warning still says
where it comes from, and stays silent as soon as the root logger has a handler (the record propagates there).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["FallbackHandler", "logger"]


class FallbackHandler(logging.Handler):
    """WARNING and above on standard error as ``chroma: <message>``, only while the root logger has no handler."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("chroma: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers or sys.stderr is None:
            return  # the application's own logging shows it
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a closed stream at exit: never raise from logging
            self.handleError(record)


logger = logging.getLogger("chroma")
if not any(isinstance(h, FallbackHandler) for h in logger.handlers):
    logger.addHandler(FallbackHandler())
