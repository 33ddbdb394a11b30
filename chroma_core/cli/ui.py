"""``ui``: the page over the embedded engine, on loopback (a service serves the same page at ``/ui``)."""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import webbrowser

from chroma_core.cli.common import EPILOG, EXIT_OK, config_of, where
from chroma_core.cli.store import embedded_data_exists
from chroma_core.errors import ChromaError
from chroma_core.server.wire import is_loopback

__all__ = ["add_parser", "ui"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ui",
        parents=[common],
        epilog=EPILOG,
        help="look at your sets in the browser: the map, hover, lasso, export (needs the [server] extra)",
        description="Serve the page over the embedded engine on loopback. With --chroma-url, print the service's "
        "own page address instead (the service serves /ui behind its API keys).",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(run=ui)


def ui(args: argparse.Namespace) -> int:
    config = config_of(args)
    if not config.embedded:
        url = f"{(config.chroma_url or '').rstrip('/')}/ui"
        print(f"The service serves the page: open {url} (it asks for your API key).")
        return EXIT_OK
    if not is_loopback(args.host):
        raise ChromaError(
            f"--host {args.host} is not a loopback address: the embedded page has no API keys, so it is served on "
            "loopback only. Run `chroma-ml serve --keys-file ...` to share a page over a network."
        )
    if not embedded_data_exists(config):
        raise ChromaError(
            f"there is no Chroma data here: {where(config)} does not exist. Run the command where your data is, "
            "or pass --persist-directory DIR."
        )
    try:
        import uvicorn

        from chroma_core.server.app import create_app
    except ImportError as exc:
        raise ChromaError(
            f"the page needs the [server] extra ({exc.name} is missing): pip install 'chroma-ml[server]'"
        ) from None
    from chroma_core.engine.engine import open_engine

    engine = open_engine(config.persist_directory, store_url=config.store_url)
    port = args.port or _free_port(args.host)
    url = f"http://{args.host}:{port}/ui"
    with tempfile.TemporaryDirectory(prefix="chroma-ui-") as spool:
        app = create_app(spool, engine=engine)
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="warning"))
        print(f"chroma: the page is at {url} (Ctrl+C stops it)", file=sys.stderr, flush=True)
        if args.open:
            threading.Timer(1.0, webbrowser.open, (url,)).start()
        server.run()
    return EXIT_OK


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
