"""Files that appear whole or not at all, and private to the user who wrote them.

Everything Chroma keeps (databases, vector and index files, batch, spill and export files) holds embeddings and
input uris: it is created ``0600`` in directories Chroma creates ``0700`` (docs/security.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "TEMP_PREFIX",
    "atomic_write",
    "fsync_directory",
    "private_dir",
    "private_file",
    "tighten",
]

TEMP_PREFIX = ".chroma-tmp-"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory, created ``0700`` when it is missing (folders above it get the usual mode)."""
    directory = Path(path)
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    return directory


def tighten(path: str | os.PathLike[str], mode: int) -> None:
    """``chmod`` what Chroma made before it made things private; a file someone else owns is left as it is."""
    with contextlib.suppress(OSError):
        os.chmod(path, mode)


def private_file(path: str | os.PathLike[str]) -> Path:
    """``path`` created empty and ``0600`` when it is missing, so whatever opens it next (SQLite) keeps that mode."""
    target = Path(path)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    return target


def fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk too.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) cannot open directories; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file in the same directory, fsync it, then rename it into place.

    A crash at any point leaves either the old file (or none) or the complete new one. With
    ``overwrite=False`` an existing target raises ``FileExistsError`` and is left untouched.
    """
    target = Path(path)
    directory = target.parent
    private_dir(directory)
    temp = directory / f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    # O_EXCL: a temp name is never shared; 0600: the rename keeps the mode, so the file is private from the start.
    handle = os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "wb")
    try:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        if overwrite:
            os.replace(temp, target)
        else:
            # link() fails if the target exists, so two writers can never silently replace each other's batch.
            os.link(temp, target)
            os.unlink(temp)
        fsync_directory(directory)
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
