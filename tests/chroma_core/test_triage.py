"""Production records stored by query sessions, then `select` (what to label next) and `export`."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import sqlite3
import time
from datetime import timezone

import numpy as np
import pytest

import chroma
from chroma_core.cli import main
from chroma_core.engine.engine import open_engine
from chroma_core.engine.store import SQLiteStore
from tests.conftest import SET, clusters

SET_ID = chroma.embedding_set_id(SET)
DIM = 16


def train(n_per: int = 60):
    x, labels, centers = clusters(n_per=n_per, dim=DIM, k=4, seed=1)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/train/{i}" for i in range(len(x))], embedding=x, label=labels)
    return x, centers


def production(x):
    """20 near copies of training inputs, 40 near-identical copies of one new failure, and 2 new regions of 15."""
    rng = np.random.default_rng(7)
    copies = x[:20] + 0.001 * rng.normal(size=(20, DIM))
    failure = 6.0 * rng.normal(size=DIM)
    repeated = failure + 0.0005 * rng.normal(size=(40, DIM))
    regions = [6.0 * rng.normal(size=DIM) + 0.5 * rng.normal(size=(15, DIM)) for _ in range(2)]
    vectors = np.concatenate([copies, repeated, *regions]).astype(np.float32)
    groups = ["copy"] * 20 + ["failure"] * 40 + ["region0"] * 15 + ["region1"] * 15
    return vectors, groups


def log_production(vectors, groups, **session_kwargs):
    with chroma.QuerySession(SET, **session_kwargs) as q:
        results = q.log(input_uri=[f"/prod/{g}/{i}" for i, g in enumerate(groups)], embedding=vectors)
    return results


def stored(mode="production"):
    engine = open_engine(".chroma")
    info = engine.get_set(SET_ID)
    return engine.store.records(SET_ID, mode, 0, info.production if mode == "production" else info.training)


# ---- storing production records -------------------------------------------------------------------------------------


def test_query_session_stores_each_input_with_the_answer_it_gave():
    x, _ = train()
    vectors, groups = production(x)
    results = log_production(vectors, groups)
    records = stored()
    assert [r.input_uri for r in records] == [r.input_uri for r in results]
    for record, result in zip(records, results, strict=True):
        assert record.result.stored() == result.stored()
        assert record.result == result
    vecs = open_engine(".chroma").store.vectors(SET_ID, "production")
    np.testing.assert_array_equal(vecs, vectors)


def test_store_false_keeps_nothing_and_one_by_one_logging_is_stored_in_order():
    x, _ = train()
    log_production(x[:5], ["a"] * 5, store=False)
    assert open_engine(".chroma").get_set(SET_ID).production == 0
    q = chroma.QuerySession(SET)
    for i in range(30):
        q.log(input_uri=f"/one/{i}", embedding=x[i] + 0.01, inferences={"label": "c0", "score": 0.6})
    assert q.flush(timeout=10)
    records = stored()
    assert [r.input_uri for r in records] == [f"/one/{i}" for i in range(30)]
    assert records[0].inferences == {"label": "c0", "score": 0.6}
    q.close()


def test_module_level_log_in_query_mode_stores_too():
    x, _ = train()
    result = chroma.log(input_uri="/m", embedding=x[0] * 3, embedding_set=SET, training_mode=False)
    assert result.input_uri == "/m"
    (record,) = stored()
    assert record.input_uri == "/m" and record.result.recommendation == result.recommendation


def test_stored_production_survives_a_chdir_after_the_session_was_made(tmp_path, monkeypatch):
    x, _ = train()
    q = chroma.QuerySession(SET)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    q.log(input_uri="/moved", embedding=x[1])
    q.close()
    monkeypatch.chdir(tmp_path)
    assert [r.input_uri for r in stored()] == ["/moved"]
    assert not (tmp_path / "elsewhere" / ".chroma").exists()


def test_a_store_written_before_results_existed_is_upgraded(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "chroma.sqlite3")
    db.executescript(
        """
        CREATE TABLE records (
            set_id TEXT NOT NULL, mode TEXT NOT NULL, id TEXT NOT NULL, row INTEGER NOT NULL, batch_id TEXT NOT NULL,
            input_uri TEXT NOT NULL, inferences TEXT, label TEXT, time REAL NOT NULL,
            PRIMARY KEY (set_id, mode, id)
        ) WITHOUT ROWID;
        INSERT INTO records VALUES ('s', 'training', 'r0', 0, 'b', '/a', NULL, '"cat"', 1.0);
        """
    )
    db.commit()
    db.close()
    store = SQLiteStore(old)
    (record,) = store.records("s", "training", 0, 1)
    assert (record.input_uri, record.label, record.result) == ("/a", "cat", None)
    SQLiteStore(old)  # a second open finds the column already there


# ---- select -----------------------------------------------------------------------------------------------------------


def test_select_spreads_over_failures_and_drops_near_duplicates():
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors, groups)
    selection = chroma.select(SET, n=10)
    picked = [p.input_uri.split("/")[2] for p in selection.picks]
    # No near copy of training data; the 40 copies of one failure give one pick; both new regions are covered.
    assert "copy" not in picked
    assert picked.count("failure") == 1
    assert {"region0", "region1"} <= set(picked)
    assert selection.near_duplicates_dropped >= 39
    assert selection.considered == 90 and selection.recommended == 70 and selection.rescored == 0
    assert [p.rank for p in selection.picks] == list(range(1, len(selection.picks) + 1))
    assert all(p.result.training_recommended and p.priority > 1 for p in selection.picks)
    assert selection.picks[0].similarity_to_picked is None
    assert all(p.similarity_to_picked is not None for p in selection.picks[1:])
    # The set id works as well as the set's dict, and the answer round-trips through JSON.
    again = chroma.select(SET_ID, n=10)
    assert again.input_uris == selection.input_uris
    assert chroma.Selection.from_dict(json.loads(json.dumps(selection.to_dict()))) == selection


def test_without_diversity_the_top_priorities_come_first_but_copies_still_go():
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors, groups)
    picks = chroma.select(SET, n=5, diversity=0.0, typicality=0.0).picks
    priorities = [p.priority for p in picks]
    assert priorities == sorted(priorities, reverse=True)
    assert sum(p.input_uri.split("/")[2] == "failure" for p in picks) <= 1


def test_more_picks_than_candidates_returns_each_distinct_candidate_once():
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors, groups)
    selection = chroma.select(SET, n=1000)
    uris = selection.input_uris
    assert len(uris) == len(set(uris)) == 70 - selection.near_duplicates_dropped


def test_records_without_a_stored_answer_are_scored_at_selection(tmp_path):
    from chroma_core.batch_format import write_batch
    from chroma_core.embedding_set import EmbeddingSet
    from chroma_core.records import BatchHeader, Records, new_batch_id

    x, _ = train()
    vectors, groups = production(x)
    batch_id = new_batch_id()
    header = BatchHeader(batch_id, EmbeddingSet.from_dict(SET), "production", DIM, "")
    n = len(vectors)
    uris = [f"/prod/{g}/{i}" for i, g in enumerate(groups)]
    records = Records(vectors, [f"{batch_id}:{i}" for i in range(n)], uris, [None] * n, [None] * n, [0.0] * n)
    path = write_batch(tmp_path / "prod.jsonl", header, records)
    assert main(["upload", str(path)]) == 0
    selection = chroma.select(SET, n=10)
    assert selection.rescored == n
    assert "copy" not in {p.input_uri.split("/")[2] for p in selection.picks}
    rescored = chroma.select(SET, n=10, rescore=True)
    assert rescored.rescored == n and rescored.input_uris == selection.input_uris


def test_since_keeps_only_recent_inputs():
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors[:60], groups[:60])
    cut = time.time()
    time.sleep(0.01)
    log_production(vectors[60:], groups[60:])
    picked = {p.input_uri.split("/")[2] for p in chroma.select(SET, n=10, since=cut).picks}
    assert picked == {"region0", "region1"}
    with pytest.raises(chroma.NoProductionDataError, match="since the given time"):
        chroma.select(SET, since=time.time() + 3600)


def test_select_bad_input():
    with pytest.raises(chroma.UnknownEmbeddingSetError, match="chroma sets"):
        chroma.select({"model": "nope"})
    train()
    with pytest.raises(chroma.NoProductionDataError, match="QuerySession"):
        chroma.select(SET)
    with pytest.raises(chroma.ChromaError, match="n must be"):
        chroma.select(SET, n=0)
    with pytest.raises(chroma.ChromaError, match="diversity must be"):
        chroma.select(SET, diversity=1.5)


def test_balance_spreads_picks_over_predicted_labels_and_typicality_prefers_dense_regions():
    x, _ = train()
    rng = np.random.default_rng(11)
    dense = 6.0 * rng.normal(size=DIM) + 2.0 * rng.normal(size=(15, DIM))  # one novel region of 15
    lone = 6.0 * rng.normal(size=(3, DIM))  # three novel inputs, each alone
    vectors = np.concatenate([dense, lone]).astype(np.float32)
    groups = ["dense"] * 15 + ["lone"] * 3
    with chroma.QuerySession(SET) as q:
        # The model predicts "cat" for most of the region and "dog" for the rest: balance is over these labels.
        labels = ["cat"] * 12 + ["dog"] * 3 + ["cat"] * 3
        q.log(
            input_uri=[f"/prod/{g}/{i}" for i, g in enumerate(groups)],
            embedding=vectors,
            inferences=[{"label": label} for label in labels],
        )
    by_uri = {f"/prod/{g}/{i}": label for i, (g, label) in enumerate(zip(groups, labels, strict=True))}
    balanced = chroma.select(SET, n=6, diversity=0.0, balance=1.0)
    assert [by_uri[u] for u in balanced.input_uris].count("dog") == 3  # every class in turn until "dog" runs out
    assert [by_uri[u] for u in balanced.input_uris[:2]] in (["cat", "dog"], ["dog", "cat"])
    typical = chroma.select(SET, n=4, diversity=0.0, typicality=1.0)
    assert all(u.split("/")[2] == "dense" for u in typical.input_uris)
    everything = chroma.select(SET, n=18, diversity=0.0, typicality=1.0).input_uris
    assert {u.split("/")[2] for u in everything[-3:]} == {"lone"}  # reordered last, never left out
    with pytest.raises(chroma.ChromaError, match="typicality must be a weight from 0"):
        chroma.select(SET, typicality=-0.1)
    with pytest.raises(chroma.ChromaError, match="balance must be a weight from 0"):
        chroma.select(SET, balance=True)
    assert main(["select", "--set", SET_ID, "-n", "6", "--diversity", "0", "--balance", "1", "--uris"]) == 0


def test_select_cli(capsys):
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors, groups)
    assert main(["select", "--set", SET_ID, "-n", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 picks from 70 recommended of 90 production inputs")
    assert "out_of_distribution" in out
    assert main(["select", "--set", SET_ID, "-n", "4", "--uris"]) == 0
    uris = capsys.readouterr().out.split()
    assert uris == chroma.select(SET, n=4).input_uris
    assert main(["select", "--set", SET_ID, "-n", "4", "--json", "--since", "2020-01-01T00:00:00Z"]) == 0
    assert [p["input_uri"] for p in json.loads(capsys.readouterr().out)["picks"]] == uris
    assert main(["select", "--set", "f" * 40]) == 1
    assert "unknown embedding set" in capsys.readouterr().err
    assert main(["select", "--set", SET_ID, "--since", "last tuesday"]) == 1
    assert "ISO date" in capsys.readouterr().err


# ---- export -----------------------------------------------------------------------------------------------------------


def test_export_parquet_holds_every_record_with_its_answer(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    with contextlib.suppress(ImportError):
        import usearch.index  # noqa: F401 - reading back must not crash where usearch is loaded (see export.py)
    x, _ = train()
    vectors, groups = production(x)
    results = log_production(vectors, groups)
    report = chroma.export(SET, tmp_path / "set.parquet")
    assert (report.format, report.training, report.production) == ("parquet", len(x), len(vectors))
    table = pq.read_table(tmp_path / "set.parquet")
    meta = json.loads(table.schema.metadata[b"chroma_export"])
    assert meta["set_id"] == SET_ID and meta["embedding_set"] == SET and meta["dimension"] == DIM
    rows = table.to_pylist()
    training = [r for r in rows if r["mode"] == "training"]
    prod = [r for r in rows if r["mode"] == "production"]
    np.testing.assert_array_equal(np.array([r["embedding"] for r in training], np.float32), x)
    assert json.loads(training[0]["label"]) == "c0" and training[0]["result"] is None
    np.testing.assert_array_equal(np.array([r["embedding"] for r in prod], np.float32), vectors)
    times = [r.time for r in stored()]
    assert [row["time"].replace(tzinfo=timezone.utc).timestamp() for row in prod] == pytest.approx(times, abs=1e-5)
    for row, result in zip(prod, results, strict=True):
        assert row["recommendation"] == result.recommendation
        assert row["training_recommended"] == result.training_recommended
        assert row["novelty"] == pytest.approx(result.scores["novelty"])
        assert json.loads(row["result"]) == result.stored()


def test_export_jsonl_is_checksummed_and_gzip_by_name(tmp_path):
    x, _ = train()
    vectors, groups = production(x)
    log_production(vectors, groups)
    assert main(["export", "--set", SET_ID, "--mode", "production", "-o", str(tmp_path / "p.jsonl.gz")]) == 0
    raw = gzip.decompress((tmp_path / "p.jsonl.gz").read_bytes())
    lines = raw.splitlines(keepends=True)
    header, records, trailer = json.loads(lines[0]), [json.loads(li) for li in lines[1:-1]], json.loads(lines[-1])
    assert header["counts"] == {"production": len(vectors)}
    assert trailer["count"] == len(records) == len(vectors)
    assert trailer["sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    np.testing.assert_array_equal(np.array([r["embedding"] for r in records], np.float32), vectors)
    assert {r["mode"] for r in records} == {"production"}
    assert all(r["result"]["recommendation"] in ("training_recommended", "not_useful", "neutral") for r in records)


def test_export_bad_input(tmp_path, capsys):
    train()
    with pytest.raises(chroma.UnknownEmbeddingSetError):
        chroma.export({"model": "nope"}, tmp_path / "x.parquet")
    with pytest.raises(chroma.ChromaError, match="cannot tell the export format"):
        chroma.export(SET, tmp_path / "x.csv")
    chroma.export(SET, tmp_path / "x.jsonl")
    with pytest.raises(chroma.ChromaError, match="already exists"):
        chroma.export(SET, tmp_path / "x.jsonl")
    assert chroma.export(SET, tmp_path / "x.jsonl", overwrite=True).training == 240
    assert main(["export", "--set", SET_ID, "-o", str(tmp_path / "x.jsonl")]) == 1
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".chroma-tmp")] == []


# ---- previews: what a person reads instead of a hash ----------------------------------------------------------------


def test_previews_show_in_select_the_cli_and_exports(capsys, tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    x, _ = train()
    vectors, groups = production(x)
    texts = [f"the {g} input number {i}" for i, g in enumerate(groups)]
    with chroma.QuerySession(SET) as q:
        q.log(input_uri=[f"sha1:{i:040x}" for i in range(len(groups))], embedding=vectors, preview=texts)
    selection = chroma.select(SET, n=5)
    assert selection.picks and all(p.preview == texts[int(p.input_uri[5:], 16)] for p in selection.picks)
    assert main(["select", "--set", SET_ID[:8], "-n", "5"]) == 0
    table = capsys.readouterr().out
    assert all(repr(p.preview) in table for p in selection.picks)
    chroma.export(SET, tmp_path / "s.parquet")
    chroma.export(SET, tmp_path / "s.jsonl")
    column = pa.read_table(tmp_path / "s.parquet", columns=["mode", "preview"]).to_pydict()
    assert [p for m, p in zip(column["mode"], column["preview"], strict=True) if m == "production"] == texts
    lines = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()[1:-1]]
    assert [line["preview"] for line in lines if line["mode"] == "production"] == texts


# ---- an export read back: chroma import and chroma inspect ---------------------------------------------------------


@pytest.mark.parametrize("name", ["set.jsonl", "set.jsonl.gz", "set.parquet"])
def test_an_export_imports_back_whole_and_only_once(tmp_path, capsys, name):
    if name.endswith("parquet"):
        pytest.importorskip("pyarrow")
    x, _ = train()
    vectors, groups = production(x)
    with chroma.QuerySession(SET) as q:
        q.log(input_uri=[f"/p/{i}" for i in range(len(groups))], embedding=vectors, preview=groups)
    before = {m: chroma.records(SET, mode=m) for m in ("training", "production")}
    path = tmp_path / name
    chroma.export(SET, path)
    assert main(["inspect", str(path)]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["valid"] and inspected["records"] == {"training": len(x), "production": len(groups)}
    chroma.delete_set(SET)
    assert main(["import", str(path)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["stored"] == len(x) + len(groups) and first["problems"] == []
    assert main(["import", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == 0  # a second import stores nothing twice
    for mode, old in before.items():
        new = chroma.records(SET, mode=mode)
        assert new.ids == old.ids and new.input_uris == old.input_uris and new.previews == old.previews
        np.testing.assert_array_equal(new.vectors, old.vectors)
        assert [r and r.to_dict() for r in new.results] == [r and r.to_dict() for r in old.results]


def test_an_edited_export_is_reported_and_its_good_records_still_import(tmp_path, capsys):
    x, _ = train()
    path = tmp_path / "set.jsonl"
    chroma.export(SET, path)
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"embedding":[', '"embedding":[1.0,')  # one value too many
    path.write_text("".join(lines))
    chroma.delete_set(SET)
    assert main(["import", str(path)]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out["stored"] == len(x) - 1
    assert any(p.startswith("line 4:") for p in out["problems"]) and any("checksum" in p for p in out["problems"])
    assert main(["inspect", str(path)]) == 3
    assert "not a Chroma batch header" not in capsys.readouterr().out
