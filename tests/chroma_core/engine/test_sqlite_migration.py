"""A persist directory written by an earlier Chroma (commit 5838016) opens with the current store, answers intact.

(A store from before production answers were kept at all is tested in tests/chroma_core/test_triage.py.)"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.types import Neighbor, QueryRequest, QueryResult, SelectRequest
from tests.conftest import SET, clusters

ES = EmbeddingSet.from_dict(SET)

# The layout as commit 5838016's SQLiteStore created it, verbatim.
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS sets (
    id TEXT PRIMARY KEY, key_json TEXT NOT NULL, dimension INTEGER NOT NULL, created_at REAL NOT NULL,
    training INTEGER NOT NULL DEFAULT 0, production INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batches (
    set_id TEXT NOT NULL, batch_id TEXT NOT NULL, mode TEXT NOT NULL, complete INTEGER NOT NULL,
    stored INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (set_id, batch_id)
);
CREATE TABLE IF NOT EXISTS records (
    set_id TEXT NOT NULL, mode TEXT NOT NULL, id TEXT NOT NULL, row INTEGER NOT NULL, batch_id TEXT NOT NULL,
    input_uri TEXT NOT NULL, inferences TEXT, label TEXT, time REAL NOT NULL, result TEXT,
    PRIMARY KEY (set_id, mode, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS records_row ON records (set_id, mode, row);
"""


def _answer(i: int) -> QueryResult:
    tags = ("out_of_distribution", "uncertain") if i % 3 == 0 else ("near_duplicate",) if i % 3 == 1 else ()
    return QueryResult(
        f"/p/{i}",
        tags,
        i % 3 == 0,
        i % 3 == 1,
        scores={"novelty": 0.4 + i / 100, "nearest_similarity": 0.6, "uncertainty": 0.8, "label_disagreement": None},
        thresholds={"novelty": 0.35, "near_duplicate": 0.02, "uncertainty": 0.5, "label_disagreement": 0.5},
        nearest=(Neighbor("/t/0", 0.6, "c0"),),
        set_id=ES.id,
    )


@pytest.fixture
def old_store(tmp_path):
    """A persist directory as the previous code left it: 200 training rows, 30 production rows (20 answered)."""
    x, labels, _ = clusters(n_per=50, dim=8, k=4, seed=2)
    prod = (x[:30] + 0.3).astype(np.float32)
    folder = tmp_path / "old"
    (folder / "sets" / ES.id).mkdir(parents=True)
    db = sqlite3.connect(folder / "chroma.sqlite3")
    db.executescript(_OLD_SCHEMA)
    db.execute(
        "INSERT INTO sets VALUES (?,?,?,?,?,?)",
        (ES.id, json.dumps(dict(ES.key), sort_keys=True), 8, 1700000000, len(x), len(prod)),
    )
    db.executemany(
        "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (ES.id, "training", f"t:{i}", i, "t", f"/t/{i}", None, json.dumps(labels[i]), 1.0, None)
            for i in range(len(x))
        ],
    )
    answers = [_answer(i) if i < 20 else None for i in range(len(prod))]
    db.executemany(
        "INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (
                ES.id,
                "production",
                f"p:{i}",
                i,
                "p",
                f"/p/{i}",
                '{"label":"c0","score":0.6}',
                None,
                100.0 + i,
                None if a is None else json.dumps(a.stored()),
            )
            for i, a in enumerate(answers)
        ],
    )
    db.executemany(
        "INSERT INTO batches VALUES (?,?,?,1,?,0)", [(ES.id, "t", "training", len(x)), (ES.id, "p", "production", 30)]
    )
    db.commit()
    db.close()
    x.astype("<f4").tofile(folder / "sets" / ES.id / "training.f32")
    prod.astype("<f4").tofile(folder / "sets" / ES.id / "production.f32")
    return folder, x, prod, answers


def test_an_old_store_is_migrated_when_opened(old_store):
    folder, x, prod, answers = old_store
    store = SQLiteStore(folder)
    assert sqlite3.connect(folder / "chroma.sqlite3").execute("PRAGMA user_version").fetchone()[0] == 2
    info = store.get_set(ES.id)
    assert (info.training, info.production, info.revision) == (200, 30, 0)
    records = store.records(ES.id, "production")
    assert [r.result for r in records] == answers  # every answer rebuilt from its typed columns as it was
    assert records[0].inferences == {"label": "c0", "score": 0.6} and records[0].time == 100.0
    table = store.answers(ES.id)
    assert table.answered.sum() == 20 and table.training_recommended.sum() == 7
    assert table.has_tag("near_duplicate").sum() == 7
    np.testing.assert_array_equal(store.answers(ES.id, since=125.0).rows, np.arange(25, 30))
    np.testing.assert_array_equal(store.vectors(ES.id, "production"), prod)
    # The migrated store works as any: queries, select (rescoring the 10 inputs stored without an answer), writes.
    engine = Engine(store)
    (answer,) = engine.query(QueryRequest(ES.id, x[:1], ("/q",)))
    assert answer.not_useful
    selection = engine.select(SelectRequest(ES.id, n=5))
    assert selection.considered == 30 and selection.rescored == 10
    assert store.delete_records(["/p/0"]).production == 1
    again = SQLiteStore(folder)  # a second open finds the layout current
    assert again.get_set(ES.id).production == 29
