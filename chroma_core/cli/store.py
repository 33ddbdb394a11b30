"""The CLI's store options: ``serve --store-url``, and where an embedded command finds its data."""

from __future__ import annotations

import argparse
import os

from chroma_core.config import Config
from chroma_core.secret import redact_url

__all__ = ["add_store_url", "embedded_data_exists", "embedded_where"]


def add_store_url(parser: argparse.ArgumentParser) -> None:
    """``--store-url``: the PostgreSQL database the service keeps its data in (default ``$CHROMA_STORE_URL``)."""
    parser.add_argument(
        "--store-url",
        default=os.environ.get("CHROMA_STORE_URL") or None,
        metavar="URL",
        help="keep the data in this PostgreSQL database (postgresql://user:password@host/db), shared by every "
        "replica, instead of SQLite under --persist-directory (default $CHROMA_STORE_URL)",
    )


def embedded_data_exists(config: Config) -> bool:
    """Whether the embedded engine has data to read: a database always may; a persist directory must exist."""
    return bool(config.store_url) or os.path.isdir(config.persist_directory)


def embedded_where(config: Config) -> str:
    """Where the embedded engine's data is, said for a person (a database URL without its password)."""
    if config.store_url:
        return f"the database at {redact_url(config.store_url)}"
    return f"the embedded store at {os.path.abspath(config.persist_directory)}"
