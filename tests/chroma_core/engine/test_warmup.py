from __future__ import annotations

import threading
import time

import numpy as np

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import SQLiteStore, scoring
from chroma_core.engine.engine import Engine
from chroma_core.records import BatchHeader, Records
from chroma_core.types import DEFAULT_THRESHOLDS, QueryRequest
from tests.conftest import SET, clusters

ES = EmbeddingSet.from_dict(SET)


def part(x: np.ndarray, labels: list[str], start: int, stop: int) -> tuple[BatchHeader, Records]:
    n = stop - start
    header = BatchHeader(f"b{start}", ES, "training", x.shape[1], "t")
    inferences = [{"label": lab, "score": 0.6 + 0.3 * ((i * 7) % 10) / 10} for i, lab in enumerate(labels[start:stop])]
    records = Records(
        x[start:stop],
        [f"r{i}" for i in range(start, stop)],
        [f"/{i}" for i in range(start, stop)],
        inferences,
        labels[start:stop],
        [0.0] * n,
    )
    return header, records


def answers(engine: Engine, q: np.ndarray) -> list[tuple]:
    results = engine.query(QueryRequest.of(ES, q, [f"q{i}" for i in range(len(q))]))
    return [(r.recommendations, [n.input_uri for n in r.nearest], r.scores, r.thresholds) for r in results]


def test_a_large_upload_is_loaded_and_calibrated_before_any_query(tmp_path, monkeypatch):
    x, labels, _ = clusters(n_per=400, dim=32, k=5, noise=0.4, seed=3)  # 2,000 rows, sent in two parts
    q, _, _ = clusters(n_per=20, dim=32, k=5, noise=0.4, seed=4)
    calls: list[int] = []
    real = scoring.SetModel._calibrate

    def counted(self, th, n, k):
        calls.append(n)
        return real(self, th, n, k)

    monkeypatch.setattr(scoring.SetModel, "_calibrate", counted)
    store = SQLiteStore(tmp_path / "warm", ann_threshold=None)
    warm = Engine(store, warm_rows=1500, warm_delay=2.0)  # parts come within ms: one warm-up, after the last
    warm.put(*part(x, labels, 0, 1000))
    assert warm.wait_for_model(ES.id, 0.1)  # 1,000 rows: under warm_rows, nothing scheduled
    warm.put(*part(x, labels, 1000, 2000))
    key = scoring.calibration_key(DEFAULT_THRESHOLDS, DEFAULT_THRESHOLDS.k)
    deadline = time.monotonic() + 60
    while store.read_state(ES.id, key) is None and time.monotonic() < deadline:  # no query asks for it
        time.sleep(0.05)
    assert store.read_state(ES.id, key) is not None
    assert warm.wait_for_model(ES.id, 60)
    assert calls == [2000] and len(warm._models[ES.id]) == 2000  # debounced: the whole set, once
    got = answers(warm, q)
    assert calls == [2000]  # the query found the calibration ready

    # The same data stored without the engine (nothing warmed): the model and calibration computed on demand.
    cold_store = SQLiteStore(tmp_path / "cold", ann_threshold=None)
    for start in (0, 1000):
        header, records = part(x, labels, start, start + 1000)
        cold_store.put(header, [records], complete=lambda: True)
    cold = Engine(cold_store, warm_rows=None)
    assert ES.id not in cold._models
    assert answers(cold, q) == got
    assert calls == [2000, 2000]
    warm.close()
    cold.close()


def test_closing_the_engine_cancels_a_pending_warm_up(tmp_path):
    x, labels, _ = clusters(n_per=100, dim=8, k=2, noise=0.4, seed=5)
    engine = Engine(SQLiteStore(tmp_path, ann_threshold=None), warm_rows=1, warm_delay=30.0)
    engine.put(*part(x, labels, 0, 200))
    assert not engine.wait_for_model(ES.id, 0.05)  # pending
    engine.close()
    assert engine.wait_for_model(ES.id, 1.0) and ES.id not in engine._models


def test_a_set_being_loaded_holds_up_only_its_own_queries(tmp_path, monkeypatch):
    x, labels, _ = clusters(n_per=100, dim=8, k=2, noise=0.4, seed=6)
    other = EmbeddingSet.from_dict({**SET, "layer": "other"})
    engine = Engine(SQLiteStore(tmp_path, ann_threshold=None), warm_rows=None)
    engine.put(*part(x, labels, 0, 200))
    header, records = part(x, labels, 0, 200)
    engine.put(BatchHeader("o", other, "training", 8, "t"), records)
    entered, release = threading.Event(), threading.Event()
    real = Engine._grow

    def slow(self, model, count):
        if model.set_id == ES.id:
            entered.set()
            assert release.wait(30)
        real(self, model, count)

    monkeypatch.setattr(Engine, "_grow", slow)
    loading = threading.Thread(target=answers, args=(engine, x[:2]))
    loading.start()
    assert entered.wait(30)
    results = engine.query(QueryRequest.of(other, x[:2], ["a", "b"]))  # not held up by the other set's load
    assert len(results) == 2 and loading.is_alive()
    release.set()
    loading.join(30)
    assert len(engine._models[ES.id]) == 200
    engine.close()
