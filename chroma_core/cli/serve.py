"""``serve``: run the HTTP service (the server extra is imported only here, and only when it runs)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from chroma_core.cli.common import EXIT_OK, SERVER
from chroma_core.errors import ChromaError
from chroma_core.server.settings import MIB, ServerSettings

__all__ = ["serve"]


def serve(args: argparse.Namespace) -> int:
    try:
        from chroma_core.server.run import serve
    except ImportError as exc:
        raise ChromaError(
            f"the service needs the [server] extra ({exc.name} is missing): pip install 'chroma-ml[server]'"
        ) from None
    if args.store_url:  # create_app reads it there (serve() passes it no store_url)
        os.environ["CHROMA_STORE_URL"] = args.store_url
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        persist_directory=args.persist_directory,
        store_url=args.store_url or None,
        keys_file=args.keys_file,
        log_level=args.log_level,
        limits=SERVER.limits
        if args.max_body_mb is None
        else dataclasses.replace(SERVER.limits, max_body_bytes=args.max_body_mb * MIB),
    )
    serve(settings)
    return EXIT_OK
