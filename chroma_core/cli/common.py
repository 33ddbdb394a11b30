"""What every command shares: exit codes, the common options' readers, and printing."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from chroma_core.cli.store import embedded_data_exists, embedded_where
from chroma_core.config import Config, load_config
from chroma_core.errors import ChromaError
from chroma_core.server.settings import ServerSettings
from chroma_core.transport import Transport, transport_for

__all__ = [
    "EPILOG",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "SERVER",
    "UsageError",
    "config_of",
    "cut",
    "print_json",
    "reader",
    "set_argument",
    "since",
    "where",
]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

#: The service's defaults, read from its settings (no server dependency is loaded to know them).
SERVER = ServerSettings()

EPILOG = "exit codes: 0 ok, 1 error (nothing done), 2 usage error, 3 partial (file problems; good records kept)"


class UsageError(Exception):
    """A command used wrongly (exit code 2), said in words rather than by argparse."""


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=4, ensure_ascii=False))


def config_of(args: argparse.Namespace) -> Config:
    return load_config(
        chroma_config=args.config,
        chroma_url=args.chroma_url,
        api_key=args.api_key,
        persist_directory=args.persist_directory,
    )


def where(config: Config) -> str:
    if config.embedded:
        return embedded_where(config)
    return f"the Chroma service at {config.chroma_url}"


def reader(args: argparse.Namespace) -> Transport:
    """The transport of a command that only reads: an embedded store that does not exist is not created."""
    config = config_of(args)
    if config.embedded and not embedded_data_exists(config):
        named = getattr(args, "set_id", None)
        unknown = f"unknown embedding set {named!r}: " if named else ""
        raise ChromaError(
            f"{unknown}there is no Chroma data here: {where(config)} does not exist. Run the command where your "
            "data is, or pass --persist-directory DIR (or --chroma-url URL for a service)."
        )
    return transport_for(config)


def set_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    # One spelling (--set) for every command; the seed's -embedding_set and the long forms keep working.
    parser.add_argument(
        "--set",
        "--embedding-set",
        "--embedding_set",
        "-embedding_set",
        dest="set_id",
        required=required,
        metavar="SET",
        help="the embedding set: its id, a unique id prefix (8+ hex digits, see `chroma sets`) or its dict as JSON",
    )


def since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ChromaError(
            f"--since {value!r} is neither seconds since the epoch nor an ISO date such as 2026-11-01T00:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
