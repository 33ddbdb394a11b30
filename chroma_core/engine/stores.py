"""Which store a configuration asks for: SQLite under a persist directory, or PostgreSQL at a store URL.

No store URL: the embedded SQLite store, as always. A ``postgresql://`` URL: a
:class:`~chroma_core.engine.postgres_store.PostgresStore` for one application (``tenant``) of that database, loaded
only then, so an install without the ``[postgres]`` extra never imports a database driver.
"""

from __future__ import annotations

import os

from chroma_core.config import check_store_url
from chroma_core.engine.store import Store

__all__ = ["open_store"]


def open_store(
    persist_directory: str | os.PathLike[str], *, store_url: str | None = None, tenant: str = "default"
) -> Store:
    """The store for ``store_url`` (as ``tenant``), or the SQLite store in ``persist_directory`` without one."""
    if store_url:
        from chroma_core.engine.postgres_store import PostgresStore

        return PostgresStore(check_store_url(store_url), tenant=tenant)
    from chroma_core.engine.sqlite_store import SQLiteStore

    return SQLiteStore(persist_directory)
