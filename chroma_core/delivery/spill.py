"""The spill directory: production batches that could not be sent now, kept on disk (bounded) and sent later.

Layout: ``<root>/<pid>-<n>/<time_ns>-<seq>-<batch_id>.jsonl``, one subdirectory per worker per process, so two
writers never race over one file. Names sort oldest first, across directories.

The directory's files and their sizes are tracked in memory: writing and replaying never list the directory.
It is read from disk only at start-up (:meth:`SpillDirectory.open`), and again (:meth:`rescan`) after a failure,
which is also when the subdirectories of processes that died are adopted: their batches are replayed by us.
Only the worker's thread uses an instance; other threads read no more than :func:`len`.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import time
from pathlib import Path

from chroma_core.atomic import private_dir
from chroma_core.batch_format import write_batch
from chroma_core.delivery.worker import Tally
from chroma_core.logs import logger
from chroma_core.records import BatchHeader, Records

__all__ = ["SpillDirectory"]

_numbers = itertools.count(1)


class SpillDirectory:
    """See the module docstring. ``max_bytes`` bounds this worker's files plus those it adopted."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int, tally: Tally) -> None:
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self.tally = tally
        self._number = next(_numbers)
        self.directory = self._own()
        self._files: list[tuple[str, Path, int]] = []  # (name, path, size), sorted by name: oldest first
        self._bytes = 0
        self._seq = 0

    def _own(self) -> Path:
        return self.root / f"{os.getpid()}-{self._number}"

    def __len__(self) -> int:
        return len(self._files)

    @property
    def bytes(self) -> int:
        """The size of the tracked files."""
        return self._bytes

    def open(self) -> None:
        """Take this process's own subdirectory (a fork child gets a new one) and read what is on disk."""
        self.directory = self._own()  # created by the first write: a worker that never spills leaves no folder
        self.rescan()

    def rescan(self) -> None:
        """Read the files from disk again: ours, and those of every process that is no longer alive."""
        files: list[tuple[str, Path, int]] = []
        for directory in [self.directory, *self._orphans()]:
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                if not entry.name.endswith(".jsonl") or entry.name.startswith("."):
                    continue  # a temporary file of an atomic write that never finished
                with contextlib.suppress(OSError):
                    files.append((entry.name, Path(entry.path), entry.stat().st_size))
        files.sort()
        self._files = files
        self._bytes = sum(size for _, _, size in files)

    def _orphans(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        out = []
        for entry in entries:
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)) and entry.is_dir():
                out.append(Path(entry.path))
        return out

    def oldest(self) -> Path | None:
        """The next file to replay."""
        return self._files[0][1] if self._files else None

    def write(self, header: BatchHeader, records: Records) -> bool:
        """Keep a batch (atomically: whole or not at all); False, and counted, when it had to be dropped."""
        estimate = len(records) * (header.dimension * 4 * 4 // 3 + 200)  # base64 float32 plus the line's text
        if self._bytes + estimate > self.max_bytes:
            self.tally.drop("spill_full", len(records))
            return False
        self._seq += 1
        name = f"{time.time_ns():020d}-{self._seq:06d}-{header.batch_id}.jsonl"
        path = self.directory / name
        try:
            # 0700 both: spilled batches hold embeddings and input uris (their files are 0600, see atomic_write).
            private_dir(private_dir(self.root) / self.directory.name)
            write_batch(path, header, records)
            size = path.stat().st_size
        except OSError as exc:
            logger.warning("cannot spill to %s (%s)", self.directory, exc)
            self.tally.drop("spill_error", len(records))
            return False
        bisect.insort(self._files, (name, path, size))
        self._bytes += size
        self.tally.add("spilled", len(records))
        return True

    def remove(self, path: Path) -> None:
        """Forget a file that was sent (or rejected) and delete it; an adopted directory goes once it is empty."""
        for i, (_, p, size) in enumerate(self._files):
            if p == path:
                del self._files[i]
                self._bytes -= size
                break
        path.unlink(missing_ok=True)
        if path.parent != self.directory:
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # fails while it still holds files: that is the point


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
