"""A set calibrated under the old default novelty score keeps answering after the default changed."""

from __future__ import annotations

import numpy as np

from chroma_core.engine import Engine, SQLiteStore
from chroma_core.engine.scoring import calibration_key
from chroma_core.records import BatchHeader, Records
from chroma_core.types import QueryRequest, Thresholds
from tests.chroma_core.engine.test_store import ES, put


def test_a_set_calibrated_under_knn_mean_answers_with_the_new_default(tmp_path):
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(3, 12))
    pick = rng.integers(3, size=120)
    x = (centers[pick] + 0.3 * rng.normal(size=(120, 12))).astype(np.float32)
    store = SQLiteStore(tmp_path)
    uris = [f"/t/{i}" for i in range(120)]
    labels = [f"c{c}" for c in pick]
    put(store, BatchHeader("t", ES, "training", 12, "t"), Records(x, uris, uris, [None] * 120, labels, [0.0] * 120))
    q = rng.normal(size=(1, 12)).astype(np.float32)
    old = Thresholds(novelty_score="knn_mean")
    (before,) = Engine(store).query(QueryRequest(ES.id, q, ("/q",), thresholds=old))
    kept_old = store.read_state(ES.id, calibration_key(old, 10))
    assert kept_old is not None and kept_old["novelty"] == before.thresholds["novelty"]
    # After the upgrade (a new process): the default score gets its own calibration, the old one stays and is reused.
    engine = Engine(SQLiteStore(tmp_path))
    (now,) = engine.query(QueryRequest(ES.id, q, ("/q",)))
    kept_new = store.read_state(ES.id, calibration_key(Thresholds(), 10))
    assert kept_new is not None and kept_new["novelty"] == now.thresholds["novelty"] != before.thresholds["novelty"]
    assert np.isfinite(now.scores["novelty"]) and 0.0 <= now.scores["novelty"] <= 2.0
    (again,) = engine.query(QueryRequest(ES.id, q, ("/q",), thresholds=old))
    assert again.thresholds["novelty"] == before.thresholds["novelty"]
    assert again.scores["novelty"] == before.scores["novelty"]
