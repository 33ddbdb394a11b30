"""Files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_PREFIX", "atomic_write", "fsync_directory"]

TEMP_PREFIX = ".chroma-tmp-"


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
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    handle = open(temp, "xb")  # noqa: SIM115 - closed below, before the rename
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
