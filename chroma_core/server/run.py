"""``python -m chroma serve``: the service on uvicorn, with a graceful shutdown."""

from __future__ import annotations

import logging
import sys

from chroma_core.server.app import create_app
from chroma_core.server.auth import DEFAULT_APPLICATION, Keys, is_loopback
from chroma_core.server.protocol import timed_protocol
from chroma_core.server.settings import ServerSettings

__all__ = ["serve"]


def _say(message: str) -> None:
    print(f"chroma: {message}", file=sys.stderr, flush=True)


def serve(settings: ServerSettings | None = None) -> None:
    """Run the service until SIGTERM/SIGINT (``ServerSettings()``'s defaults when no settings are given)."""
    import uvicorn

    settings = settings or ServerSettings()
    keys = Keys.load(settings.keys_file) if settings.keys_file else None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if keys is None:
        _say(
            f"no API keys configured (--keys-file): serving loopback clients only, as application "
            f"{DEFAULT_APPLICATION!r}"
        )
        if not is_loopback(settings.host):
            _say(f"listening on {settings.host}, but clients that are not on loopback will be refused")
    else:
        _say(f"{keys!r} loaded")
    app = create_app(settings.persist_directory, keys=keys, limits=settings.limits, store_url=settings.store_url)
    # In-flight requests (uploads included) get time to finish after SIGTERM/SIGINT; new ones are refused.
    # Every connection is bounded in time (head, keep-alive; bodies in server.body) and in number (503 past it).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        access_log=False,
        http=timed_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_concurrency,
    )
