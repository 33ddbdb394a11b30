"""The production worker on the embedded engine: adoption of a dead process's spill files, idleness, callbacks."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from chroma_core.batch_format import write_batch
from chroma_core.config import load_config
from chroma_core.delivery import BackgroundWorker, WorkerOptions, spill_directory_for, worker_transport
from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine.store import SQLiteStore
from chroma_core.errors import StorageError
from chroma_core.records import new_batch
from tests.chroma_core.delivery.audit import SCAN_EVENTS, watch
from tests.chroma_core.delivery.test_worker import innermost, thread_of
from tests.conftest import SET

ES = EmbeddingSet.from_dict(SET)


def embedded_worker(tmp_path, **options) -> BackgroundWorker:
    config = load_config(persist_directory=str(tmp_path / "store"), environ={})
    return BackgroundWorker(
        worker_transport(config),
        WorkerOptions(**options),
        spill_directory=spill_directory_for(config, "queries"),
    )


def production(tmp_path) -> int:
    info = SQLiteStore(tmp_path / "store").get_set(ES.id)
    return 0 if info is None else info.production


def test_spill_files_of_a_dead_process_are_replayed_by_the_next_worker(tmp_path):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    orphan = tmp_path / "store" / "spill" / "queries" / f"{dead}-1"
    for i in range(2):
        vectors = np.full((3, 8), i + 1, np.float32)
        header, records = new_batch(ES, "production", vectors, [f"/old/{i}/{j}" for j in range(3)])
        write_batch(orphan / f"{i:020d}-000001-{header.batch_id}.jsonl", header, records)
    worker = embedded_worker(tmp_path, flush_interval=0.01)
    assert worker.submit(ES, np.ones(8, np.float32), "/new")
    assert worker.flush(10)
    stats = worker.stats()
    # The new record is sent after the old ones, or (to keep order) spilled behind them and replayed with them.
    assert stats["replayed"] >= 6 and stats["replayed"] + stats.get("sent", 0) == 7
    assert stats["spill_files"] == 0 and stats["dropped"] == {}
    assert production(tmp_path) == 7
    assert not orphan.exists()


def test_an_idle_worker_neither_scans_nor_wakes(tmp_path):
    worker = embedded_worker(tmp_path, flush_interval=0.01)
    worker.submit(ES, np.ones(8, np.float32), "/one")
    assert worker.flush(10)
    thread = thread_of(worker._worker)
    before = sys._current_frames()[thread.ident]
    with watch(kinds=SCAN_EVENTS) as scans:
        time.sleep(1.0)
    assert scans.events == []  # the old worker listed its spill directory about 20 times a second here
    assert innermost(thread) == ("wait", "threading.py") and sys._current_frames()[thread.ident] is before


def test_answers_reach_on_result_and_its_errors_go_to_the_guard(tmp_path, internal_errors):
    seen = []

    def on_result(uri, result):
        seen.append((uri, result))
        raise ValueError("the user's callback is broken")

    worker = embedded_worker(tmp_path, flush_interval=0.01)
    for i in range(3):
        worker.submit(ES, np.full(8, i, np.float32), f"/p/{i}", on_result=on_result)
    assert worker.flush(10)
    assert seen == [("/p/0", None), ("/p/1", None), ("/p/2", None)]  # no training data: no answer, but a call
    captured = internal_errors.take()
    assert [what for what, _ in captured] == ["the on_result callback"] * 3
    assert production(tmp_path) == 3  # stored all the same


def test_a_minority_dimension_is_dropped_and_counted(tmp_path):
    worker = embedded_worker(tmp_path, flush_interval=10.0)
    for i in range(3):
        worker.submit(ES, np.ones(8, np.float32), f"/p/{i}")
    worker.submit(ES, np.ones(4, np.float32), "/odd")
    assert worker.flush(10)
    assert worker.stats()["dropped"] == {"dimension_mismatch": 1}
    assert production(tmp_path) == 3


def test_an_engine_that_cannot_be_opened_yet_means_spill_then_replay(tmp_path, caplog):
    config = load_config(persist_directory=str(tmp_path / "store"), environ={})
    real = worker_transport(config)
    attempts = []

    def factory():
        attempts.append(1)
        if len(attempts) == 1:
            raise StorageError("the persist directory is not mounted yet")
        return real()

    worker = BackgroundWorker(
        factory, WorkerOptions(flush_interval=0.01), spill_directory=spill_directory_for(config, "queries")
    )
    for i in range(3):
        worker.submit(ES, np.full(8, i + 1, np.float32), f"/p/{i}")
    assert worker.flush(10)
    stats = worker.stats()
    assert stats["connect_failures"] == 1 and stats["spilled"] == 3 and stats["replayed"] == 3
    assert stats["dropped"] == {} and production(tmp_path) == 3
    assert "cannot reach the engine yet" in caplog.text
