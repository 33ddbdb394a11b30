"""The SQLite store's files: one float32 vector file per (set, mode), and the index files beside the training one.

``sets/<set_id>/<mode>.f32`` holds a partition's vectors, little-endian float32, row-major, append-only. A delete
writes the kept rows to a new file of the next *generation* (``<mode>.<gen>.f32``) and fsyncs it before the
transaction that switches the database to that generation commits; so the database always names a whole file,
and what a crash leaves behind (a file of a generation the database does not name) is swept up later, under the
write lock, by :func:`sweep`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from chroma_core.atomic import private_dir, private_file
from chroma_core.errors import StorageError
from chroma_core.vectors import Matrix

__all__ = ["RowMaps", "appending", "compact", "index_path", "read_range", "read_rows", "sweep", "vector_path"]

_F32 = np.dtype("<f4")
_COPY_ROWS = 65_536  # rows copied per step while compacting: bounded memory whatever the set's size
_NAME = re.compile(r"^(training|production)(?:\.(\d+))?\.(f32|usearch|json)$")


def _stem(mode: str, gen: int) -> str:
    return mode if gen == 0 else f"{mode}.{gen}"


def vector_path(root: Path, set_id: str, mode: str, gen: int) -> Path:
    return root / "sets" / set_id / f"{_stem(mode, gen)}.f32"


def index_path(root: Path, set_id: str, gen: int) -> Path:
    """The usearch index of the training vectors of generation ``gen`` (its sidecar has the ``.json`` suffix)."""
    return root / "sets" / set_id / f"{_stem('training', gen)}.usearch"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def appending(path: Path, count: int, dimension: int) -> Iterator[Callable[[Matrix], None]]:
    """Cut ``path`` to its ``count`` committed rows (a crash's tail), then append what is written; fsync at the end.

    Chunks go to the file as they come, so a large batch is never held in memory whole.
    """
    private_file(private_dir(path.parent) / path.name)
    with open(path, "ab") as f:
        f.truncate(count * dimension * 4)

        def write(part: Matrix) -> None:
            if len(part):
                f.write(np.ascontiguousarray(part, dtype=_F32).data)  # the buffer itself: no bytes copy

        yield write
        f.flush()
        os.fsync(f.fileno())  # vectors reach the disk before the transaction that references them commits


def _short(path: Path, got: int, want: int) -> StorageError:
    return StorageError(
        f"{str(path)!r} holds fewer vectors than the database records ({got} < {want}); the persist directory "
        "was modified outside Chroma."
    )


def read_range(path: Path, dimension: int, start: int, stop: int) -> Matrix:
    """Rows ``start..stop-1`` (all committed)."""
    n = stop - start
    with open(path, "rb") as f:
        f.seek(start * dimension * 4)
        data = np.fromfile(f, dtype=_F32, count=n * dimension)
    if data.size != n * dimension:
        raise _short(path, start + data.size // dimension, stop)
    return data.reshape(n, dimension).astype(np.float32, copy=False)


def read_rows(path: Path, dimension: int, count: int, rows: np.ndarray) -> Matrix:
    """The given rows (each below ``count``), through a read-only memory map: pages come from the OS cache."""
    if path.stat().st_size < count * dimension * 4:
        raise _short(path, path.stat().st_size // (dimension * 4), count)
    if rows.size and (rows.min() < 0 or rows.max() >= count):
        raise IndexError(f"rows must lie in 0..{count - 1}")
    view = np.memmap(path, dtype=_F32, mode="r", shape=(count, dimension))
    return np.array(view[rows], dtype=np.float32)


class RowMaps:
    """:func:`read_rows` with one memory map kept open per vector file, rather than one opened per call.

    A map covers the committed rows it was opened for (never the uncommitted tail a crash may leave, which the next
    write cuts off: a page past the end of a file would be a SIGBUS). It is opened again when more rows are
    committed, or when the (set, mode) names another file: a new generation, or the same path of a set deleted and
    made again (another inode). Thread-safe: maps are only read.
    """

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], tuple[Path, tuple[int, int], int, np.ndarray]] = {}
        self._lock = threading.Lock()

    def read(self, key: tuple[str, str], path: Path, dimension: int, count: int, rows: np.ndarray) -> Matrix:
        """The given rows (each below ``count``) of ``path``, the vector file of ``key`` = (set id, mode)."""
        info = path.stat()
        if info.st_size < count * dimension * 4:
            raise _short(path, info.st_size // (dimension * 4), count)
        if rows.size and (rows.min() < 0 or rows.max() >= count):
            raise IndexError(f"rows must lie in 0..{count - 1}")
        if not rows.size or not count:
            return np.empty((rows.size, dimension), dtype=np.float32)
        inode = (info.st_dev, info.st_ino)
        with self._lock:
            held = self._maps.get(key)
            if held is None or held[0] != path or held[1] != inode or held[2] < count:
                # A plain array over the map (it keeps the map open): indexing it makes one copy, where a memmap's
                # own indexing makes a memmap that np.array then copied again.
                view = np.asarray(np.memmap(path, dtype=_F32, mode="r", shape=(count, dimension)))
                held = self._maps[key] = (path, inode, count, view)
        out: Matrix = held[3][rows]
        return out

    def forget(self, set_id: str) -> None:
        """Close the set's maps (its files are being deleted or replaced: a map would keep their disk space)."""
        with self._lock:
            for key in [k for k in self._maps if k[0] == set_id]:
                del self._maps[key]

    def close(self) -> None:
        with self._lock:
            self._maps.clear()


def compact(old: Path, new: Path, dimension: int, count: int, gone: np.ndarray) -> None:
    """Write the rows of ``old`` not in ``gone`` to ``new`` in order, fsynced (``old`` is left as it is)."""
    keep = np.ones(count, dtype=bool)
    keep[gone] = False
    private_file(private_dir(new.parent) / new.name)
    view = np.memmap(old, dtype=_F32, mode="r", shape=(count, dimension)) if count else None
    with open(new, "wb") as f:
        for start in range(0, count, _COPY_ROWS):
            stop = min(count, start + _COPY_ROWS)
            assert view is not None
            f.write(np.ascontiguousarray(view[start:stop][keep[start:stop]]).tobytes())
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(new.parent)


def sweep(root: Path, current: dict[str, tuple[int, int]]) -> int:
    """Remove what the database does not name: folders of sets it lacks, files of other generations, temp files.

    ``current`` maps each set id to its (training, production) generations. The caller holds the write lock, so
    no write is under way. Returns how many paths were removed.
    """
    removed = 0
    sets = root / "sets"
    for folder in sets.iterdir() if sets.is_dir() else ():
        gens = current.get(folder.name)
        if gens is None:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
            continue
        for path in folder.iterdir():
            match = _NAME.match(path.name)
            keep = match is not None and int(match.group(2) or 0) == gens[match.group(1) == "production"]
            if not keep:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
