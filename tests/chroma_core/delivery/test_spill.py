"""The spill directory keeps its files in memory: writes and replays never list it; dead processes' files adopted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from chroma_core.atomic import TEMP_PREFIX
from chroma_core.batch_format import write_batch
from chroma_core.delivery import SpillDirectory, Tally
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import new_batch
from tests.chroma_core.delivery.audit import SCAN_EVENTS, watch
from tests.conftest import SET

ES = EmbeddingSet.from_dict(SET)


def batch(n: int = 3, dim: int = 8):
    return new_batch(ES, "production", np.ones((n, dim), np.float32), [f"/p/{i}" for i in range(n)])


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def spill(root: Path, max_bytes: int = 1 << 30) -> SpillDirectory:
    directory = SpillDirectory(root, max_bytes, Tally("production records", "the test"))
    directory.open()
    return directory


def test_files_and_bytes_are_tracked_without_listing_the_directory(tmp_path):
    directory = spill(tmp_path / "spill")
    with watch(kinds=SCAN_EVENTS) as scans:
        for _ in range(3):
            assert directory.write(*batch())
        first = directory.oldest()
        assert first is not None
        directory.remove(first)
    assert scans.events == []  # written, counted and removed from memory alone
    on_disk = sorted(directory.directory.iterdir())
    assert len(directory) == len(on_disk) == 2 and first not in on_disk
    assert directory.bytes == sum(p.stat().st_size for p in on_disk)
    assert directory.oldest() == on_disk[0]  # oldest first
    assert directory.tally.snapshot()["spilled"] == 9


def test_bounded_in_bytes(tmp_path):
    directory = spill(tmp_path / "spill", max_bytes=20_000)
    written = [directory.write(*batch(n=10, dim=64)) for _ in range(10)]
    assert written[0] and not written[-1]
    assert directory.bytes <= 20_000
    assert directory.tally.snapshot()["dropped"]["spill_full"] == 10 * written.count(False)


def test_start_up_adopts_the_files_of_dead_processes_oldest_first(tmp_path):
    root = tmp_path / "spill"
    orphan, unfinished = root / f"{dead_pid()}-1", root / f"{dead_pid()}-2"
    write_batch(orphan / "00000000000000000001-000001-old.jsonl", *batch())
    write_batch(unfinished / "00000000000000000002-000001-old.jsonl", *batch())
    (unfinished / f"{TEMP_PREFIX}half-written.jsonl").write_text("")  # an atomic write that never finished
    alive = root / f"{os.getppid()}-1"  # a live process's directory is its own business
    write_batch(alive / "00000000000000000000-000001-theirs.jsonl", *batch())
    directory = spill(root)
    assert directory.write(*batch())
    assert len(directory) == 3  # the two adopted, then ours
    order = []
    while (path := directory.oldest()) is not None:
        order.append(path.parent)
        directory.remove(path)
    assert order == [orphan, unfinished, directory.directory]
    assert not orphan.exists()  # adopted and emptied: gone
    assert [p.name for p in unfinished.iterdir()] == [f"{TEMP_PREFIX}half-written.jsonl"]  # never replayed
    assert directory.bytes == 0
    assert [p.name for p in alive.iterdir()] == ["00000000000000000000-000001-theirs.jsonl"]


def test_rescan_finds_what_appeared_on_disk(tmp_path):
    root = tmp_path / "spill"
    directory = spill(root)
    write_batch(root / f"{dead_pid()}-7" / "00000000000000000001-000001-late.jsonl", *batch())
    assert len(directory) == 0  # not looked for until a failure asks for a rescan
    directory.rescan()
    assert len(directory) == 1
