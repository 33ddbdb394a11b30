"""Deleting data: a whole set, or every record of some inputs (an erasure request, e.g. under the GDPR).

An input's data lives in more places than the store: production records still queued in this process's background
workers, batches spilled to disk while a service was down, batches a failed ``save()`` kept. A delete reaches all of
them, in an order that lets nothing come back: first this process's workers are flushed (so nothing queued arrives
after the delete), then the store deletes (records, their vectors, the index), then every batch file under the
persist directory is rewritten without those inputs (or removed when nothing is left in it), so that a later replay
cannot bring them back. Batch files you wrote elsewhere with ``bufferlocal`` are yours to delete.

>>> chroma.delete(["/images/123.png", "/images/456.png"])                     # doctest: +SKIP
DeleteReport(training=1, production=3, sets=('3f2a…',), files=1)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from chroma_core.batch_format import BatchReader, write_batch
from chroma_core.config import ConfigOptions, load_config
from chroma_core.delivery.production import all_workers
from chroma_core.embedding_set import SetRef
from chroma_core.errors import BatchFormatError, ChromaError, StorageError
from chroma_core.logs import logger
from chroma_core.transport import Transport, transport_for
from chroma_core.types import DeleteReport

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["delete", "delete_set", "scrub_batch_files"]


#: How long a delete waits for this process's workers to store what they hold before it deletes.
_FLUSH_TIMEOUT = 30.0
#: Folders of the persist directory that hold the store itself (its own deletes handle those), not batch files.
_STORE_FOLDERS = ("sets", "applications", "incoming")


def delete(
    input_uris: Iterable[str],
    *,
    embedding_set: SetRef | None = None,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> DeleteReport:
    """Delete every training and production record of these inputs (in every set, or in ``embedding_set``),
    their vectors, and their copies in batch files under the persist directory. See the module docstring."""
    uris = _uris(input_uris)
    settings = load_config(**config)
    tr, owned = (transport, False) if transport is not None else (transport_for(settings), True)
    try:
        set_id = None if embedding_set is None else tr.set_id(embedding_set)
        _flush_workers()
        report = tr.delete_records(uris, set_id)
        files = scrub_batch_files(settings.persist_directory, set(uris), set_id)
    finally:
        if owned:
            tr.close()
    return DeleteReport(report.training, report.production, report.sets, files)


def delete_set(embedding_set: SetRef, *, transport: Transport | None = None, **config: Unpack[ConfigOptions]) -> bool:
    """Delete a set with all its records and vectors, and its batches spilled under the persist directory.

    True if the store held the set; its spilled batches are removed either way.
    """
    settings = load_config(**config)
    tr, owned = (transport, False) if transport is not None else (transport_for(settings), True)
    try:
        set_id = tr.set_id(embedding_set)
        _flush_workers()
        found = tr.delete_set(set_id)
        scrub_batch_files(settings.persist_directory, None, set_id)
    finally:
        if owned:
            tr.close()
    return found


def _uris(input_uris: Iterable[str]) -> list[str]:
    if isinstance(input_uris, str):
        raise ChromaError("delete() takes a list of input_uri values; wrap a single one in a list: delete([uri]).")
    uris = list(input_uris)
    bad = [u for u in uris if not isinstance(u, str) or not u]
    if bad:
        raise ChromaError(f"input_uri values to delete must be non-empty strings; got {bad[0]!r}.")
    return uris


def _flush_workers() -> None:
    for worker in all_workers():
        if not worker.flush(_FLUSH_TIMEOUT):
            logger.warning("a background worker did not finish storing within %.0f s", _FLUSH_TIMEOUT)


def scrub_batch_files(persist_directory: str | os.PathLike[str], uris: set[str] | None, set_id: str | None) -> int:
    """Rewrite the batch files under ``persist_directory`` without the records of ``uris`` (all records of
    ``set_id`` when ``uris`` is None; with both, those uris in that set), atomically; remove files left empty.

    Returns how many files were rewritten or removed. A file that cannot be read as a batch is left alone.
    """
    root = Path(persist_directory)
    changed = 0
    for path in _batch_files(root):
        try:
            with BatchReader(path) as reader:
                header = reader.header
                if set_id is not None and header.set_id != set_id:
                    continue
                records = reader.read_all()
        except (BatchFormatError, OSError):
            continue
        keep = [] if uris is None else [i for i, u in enumerate(records.input_uris) if u not in uris]
        if len(keep) == len(records):
            continue
        try:
            if keep:
                write_batch(path, header, records.subset(keep), overwrite=True)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot rewrite {str(path)!r} without the deleted inputs: {exc}") from exc
        changed += 1
    return changed


def _batch_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        if child.name in _STORE_FOLDERS or not child.is_dir():
            continue
        out += [p for p in child.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz")) and p.is_file()]
    return sorted(out)
