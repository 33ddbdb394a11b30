"""What Chroma writes is private to its user: folders 0700, files 0600 (docs/security.md, "File modes")."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chroma_core.atomic import atomic_write
from chroma_core.batch_format import write_batch
from chroma_core.delivery.spill import SpillDirectory
from chroma_core.delivery.worker import Tally
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore
from chroma_core.records import BatchHeader, Records, new_batch_id
from tests.conftest import SET, clusters

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def records(n: int = 30, dim: int = 8) -> tuple[BatchHeader, Records]:
    x, _, _ = clusters(n_per=n, dim=dim, k=1)
    header = BatchHeader(new_batch_id(), EmbeddingSet.from_dict(SET), "training", dim, "t")
    ids = [f"{header.batch_id}:{i}" for i in range(n)]
    return header, Records(x, ids, [f"/{i}" for i in range(n)], [None] * n, [None] * n, [0.0] * n)


@pytest.fixture
def open_umask():
    """The most permissive common umask: what Chroma creates must be private whatever the user's umask."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_store_folders_and_files_are_private(tmp_path, open_umask):
    store = SQLiteStore(tmp_path / "store", ann_threshold=10)
    header, recs = records()
    store.put(header, iter([recs]), complete=lambda: True)
    assert store.wait_for_index(header.set_id, timeout=60)
    store.close()
    root = tmp_path / "store"
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"chroma.sqlite3", "chroma.sqlite3-wal", "write.lock", "training.f32"}
    assert any(p.suffix == ".usearch" for p in files)
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    assert {str(p): mode(p) for p in files} == {str(p): 0o600 for p in files}


def test_an_older_store_is_tightened_on_open(tmp_path, open_umask):
    SQLiteStore(tmp_path / "old").close()
    (tmp_path / "old").chmod(0o755)
    SQLiteStore(tmp_path / "old").close()
    assert mode(tmp_path / "old") == 0o700


def test_batch_spill_and_atomic_files_are_private(tmp_path, open_umask):
    header, recs = records()
    batch = write_batch(tmp_path / "batches" / "b.jsonl.gz", header, recs)
    assert mode(batch) == 0o600 and mode(batch.parent) == 0o700
    with atomic_write(tmp_path / "x.bin") as f:
        f.write(b"x")
    assert mode(tmp_path / "x.bin") == 0o600
    spill = SpillDirectory(tmp_path / "spill", 1 << 20, Tally("records", "stats()"))
    spill.open()
    assert spill.write(header, recs)
    assert mode(tmp_path / "spill") == 0o700 and mode(spill.directory) == 0o700
    assert [mode(p) for p in spill.directory.iterdir()] == [0o600]


def test_server_directories_are_private(tmp_path, open_umask):
    pytest.importorskip("fastapi")
    from chroma_core.server.app import create_app

    create_app(tmp_path / "srv")
    assert mode(tmp_path / "srv") == 0o700 and mode(tmp_path / "srv" / "incoming") == 0o700
