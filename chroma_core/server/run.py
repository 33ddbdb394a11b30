"""``python -m chroma serve``: the service on uvicorn, with a graceful shutdown."""

from __future__ import annotations

import logging
import os
import sys

from chroma_core.server.app import Limits, create_app
from chroma_core.server.auth import Keys, is_loopback

__all__ = ["serve"]


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    persist_directory: str | os.PathLike[str] = ".chroma-server",
    keys_file: str | os.PathLike[str] | None = None,
    limits: Limits | None = None,
    log_level: str = "info",
) -> None:
    import uvicorn

    keys = Keys.load(keys_file) if keys_file else None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if keys is None:
        print(
            "chroma: no API keys configured (--keys-file): serving loopback clients only, as application 'default'",
            file=sys.stderr,
            flush=True,
        )
        if not is_loopback(host):
            print(
                f"chroma: listening on {host}, but clients that are not on loopback will be refused",
                file=sys.stderr,
                flush=True,
            )
    else:
        print(f"chroma: {keys!r} loaded", file=sys.stderr, flush=True)
    app = create_app(persist_directory, keys=keys, limits=limits)
    # In-flight requests (uploads included) get up to 30 s to finish after SIGTERM/SIGINT; new ones are refused.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30, access_log=False)
