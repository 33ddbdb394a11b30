"""``serve``: run the HTTP service (the server extra is imported only here, and only when it runs).

Every limit in ``server.settings`` has a flag and an environment variable; the flag wins, then the variable, then
the settings field's own default (the one the help shows).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from chroma_core.cli.common import EPILOG, EXIT_OK, SERVER
from chroma_core.cli.store import add_store_url
from chroma_core.errors import ChromaError, ConfigError
from chroma_core.server.settings import LOG_LEVELS, MIB, ServerSettings, check_setting

__all__ = ["LIMIT_FLAGS", "LimitFlag", "add_parser", "serve", "settings_of"]


class LimitFlag(NamedTuple):
    """One limit's flag: the settings field it sets (``limits.`` for a Limits field), its unit and its help."""

    field: str
    flag: str
    kind: type  # int or float, as the flag is written
    scale: int  # what one unit of the flag is in the field's unit (MiB flags for byte fields)
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return "CHROMASERVER_" + self.dest.upper()

    @property
    def name(self) -> str:
        return self.field.removeprefix("limits.")

    def default(self) -> int | float:
        owner = SERVER.limits if self.field.startswith("limits.") else SERVER
        value: int | float = getattr(owner, self.name)
        return value // self.scale if self.scale > 1 else value


LIMIT_FLAGS = (
    LimitFlag("limits.max_body_bytes", "--max-body-mb", int, MIB, "largest request body accepted, in MiB"),
    LimitFlag("limits.max_json_bytes", "--max-json-mb", int, MIB, "largest JSON body after gzip is undone, in MiB"),
    LimitFlag(
        "limits.max_decompressed_bytes", "--max-decompressed-mb", int, MIB, "most a gzipped batch may expand to, in MiB"
    ),
    LimitFlag(
        "limits.max_embeddings_per_request", "--max-embeddings-per-request", int, 1, "most embeddings in one query"
    ),
    LimitFlag("limits.max_dimension", "--max-dimension", int, 1, "largest embedding dimension"),
    LimitFlag("limits.max_bad_lines", "--max-bad-lines", int, 1, "bad lines in one batch before it is refused whole"),
    LimitFlag("limits.problems_reported", "--problems-reported", int, 1, "bad lines listed in an upload's answer"),
    LimitFlag("limits.body_timeout_s", "--body-timeout-s", float, 1, "longest pause inside a request body, seconds"),
    LimitFlag("header_timeout_s", "--header-timeout-s", float, 1, "time to send a whole request head, seconds"),
    LimitFlag("keep_alive_s", "--keep-alive-s", int, 1, "an idle connection is closed after this long, seconds"),
    LimitFlag("max_header_bytes", "--max-header-bytes", int, 1, "largest request head, bytes"),
    LimitFlag("max_concurrency", "--max-concurrency", int, 1, "open connections at once; more get a quick 503"),
    LimitFlag(
        "graceful_shutdown_s", "--graceful-shutdown-s", int, 1, "time in-flight requests get after SIGTERM, seconds"
    ),
)


def _parse(spec: LimitFlag) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value: int | float = spec.kind(text)
        except ValueError:
            whole = "a whole number" if spec.kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"must be {whole}, not {text!r} (flag {spec.flag}, or ${spec.env})"
            ) from None
        try:
            check_setting(spec.name, value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (flag {spec.flag}, or ${spec.env})") from None
        return value

    parse.__name__ = spec.kind.__name__  # argparse names the type in its message
    return parse


def add_parser(sub: Any) -> None:
    """Register ``serve`` and its flags on the CLI's subcommands."""
    p = sub.add_parser(
        "serve",
        epilog=EPILOG,
        help="run the Chroma service (needs the [server] extra)",
        description="Run the HTTP service. Binds to loopback unless --host says otherwise. Each limit can be set "
        "by its flag or its environment variable (the flag wins).",
    )
    p.add_argument("--host", default=SERVER.host, help=f"address to bind (default {SERVER.host})")
    p.add_argument("--port", type=int, default=SERVER.port, help=f"port (default {SERVER.port})")
    p.add_argument(
        "--persist-directory",
        default=SERVER.persist_directory,
        help=f"where the service keeps its data (default ./{SERVER.persist_directory})",
    )
    add_store_url(p)
    p.add_argument(
        "--keys-file",
        default=os.environ.get("CHROMASERVER_KEYS_FILE"),
        help='JSON {"<api key>": "<application_id>"}; without it only loopback clients are served',
    )
    p.add_argument("--log-level", default=SERVER.log_level, choices=LOG_LEVELS)
    limits = p.add_argument_group("limits", "what one client may ask of the server (docs/security.md)")
    for spec in LIMIT_FLAGS:
        # A string default goes through the type too, so a bad environment value is refused like a bad flag.
        limits.add_argument(
            spec.flag,
            dest=spec.dest,
            type=_parse(spec),
            default=os.environ.get(spec.env),
            metavar=spec.kind.__name__.upper(),
            help=f"{spec.help} (default {spec.default()}; ${spec.env})",
        )
    p.set_defaults(run=serve)


def settings_of(args: argparse.Namespace) -> ServerSettings:
    """The settings the parsed flags ask for: the fields' defaults where no flag or variable was given."""
    given: dict[str, dict[str, Any]] = {"limits": {}, "server": {}}
    for spec in LIMIT_FLAGS:
        value = getattr(args, spec.dest)
        if value is not None:
            part = "limits" if spec.field.startswith("limits.") else "server"
            given[part][spec.name] = value * spec.scale
    return ServerSettings(
        host=args.host,
        port=args.port,
        persist_directory=args.persist_directory,
        store_url=args.store_url or None,
        keys_file=args.keys_file,
        log_level=args.log_level,
        limits=dataclasses.replace(SERVER.limits, **given["limits"]),
        **given["server"],
    )


def serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    try:
        from chroma_core.server.run import serve
    except ImportError as exc:
        raise ChromaError(
            f"the service needs the [server] extra ({exc.name} is missing): pip install 'chroma-ml[server]'"
        ) from None
    if args.store_url:  # create_app reads it there (serve() passes it no store_url)
        os.environ["CHROMA_STORE_URL"] = args.store_url
    serve(settings)
    return EXIT_OK
