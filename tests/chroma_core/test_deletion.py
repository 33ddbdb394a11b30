"""Deleting a set or an input's records: gone from the store, its vectors, the index, spill and batch files, and it
does not come back after a restart, an index rebuild or a replay of a spill."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import chroma
from chroma_core.batch_format import read_batch, write_batch
from chroma_core.cli import EXIT_USAGE, main
from chroma_core.delivery import shutdown
from chroma_core.engine import Engine, SQLiteStore
from chroma_core.records import new_batch
from chroma_core.transport import transport_for
from chroma_core.types import QueryRequest
from tests.conftest import ROOT, SET, clusters

SET_ID = chroma.embedding_set_id(SET)
OTHER = {"model": "other", "layer": "x"}


def _train(es=SET, n_per=40):
    x, labels, _ = clusters(n_per=n_per, dim=16, k=3)
    with chroma.TrainingSession(es) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x, label=labels)
    return x


def _uris(mode: str, es=SET) -> list[str]:
    tr = transport_for(chroma.load_config())
    info = tr.get_set(chroma.embedding_set_id(es))
    if info is None:
        return []
    count = info.training if mode == "training" else info.production
    _, page = tr.records(info.id, mode, 0, count + 1)
    return page.input_uris


def test_erasing_an_input_removes_it_from_training_production_and_every_set():
    x = _train()
    _train(OTHER)
    with chroma.QuerySession(SET) as q:
        q.log(input_uri="/t/5", embedding=x[5] + 0.01)  # the same input again, now in production
        q.log(input_uri="/keep", embedding=x[6] + 0.01)
    report = chroma.delete(["/t/5"])
    assert (report.training, report.production) == (2, 1) and set(report.sets) == {
        SET_ID,
        chroma.embedding_set_id(OTHER),
    }
    assert "/t/5" not in _uris("training") and "/t/5" not in _uris("training", OTHER)
    assert _uris("production") == ["/keep"]
    # Its vector is no longer on disk: no row of the set's vectors equals it.
    stored = SQLiteStore(".chroma").vectors(SET_ID, "training")
    assert not (np.abs(stored - x[5]).max(axis=1) == 0).any()
    # And the engine never names it as a neighbour, however close the query.
    result = chroma.QuerySession(SET, store=False).log(input_uri="/q", embedding=x[5])
    assert all(n.input_uri != "/t/5" for n in result.nearest)


def test_erasure_survives_a_restart_and_an_index_rebuild(tmp_path):
    x = _train(n_per=400)  # 1,200 rows: over the index threshold set below
    chroma.delete(["/t/7", "/t/8"], embedding_set=SET_ID[:10])
    script = textwrap.dedent(
        f"""
        import json, numpy as np
        from chroma_core.engine import Engine, SQLiteStore
        from chroma_core.types import QueryRequest
        store = SQLiteStore(".chroma", ann_threshold=100)
        engine = Engine(store)
        x = np.array(json.loads({json.dumps(x[7:9].tolist())!r}), np.float32)
        store.nearest({SET_ID!r}, x, 10)  # starts the background build from the stored vectors
        import time
        for _ in range(600):
            c = store.nearest({SET_ID!r}, x, 10)
            if c is not None and c.covered == 1198:
                break
            time.sleep(0.05)
        results = engine.query(QueryRequest.of({SET_ID!r}, x, ["/a", "/b"]))
        print(json.dumps([c is not None and c.covered, [n.input_uri for r in results for n in r.nearest]]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT)}
    )
    covered, names = json.loads(out.stdout.strip().splitlines()[-1])
    assert covered == 1198 and names and not {"/t/7", "/t/8"} & set(names)


def _spill(directory: Path, uris: list[str], x: np.ndarray, es=SET) -> Path:
    header, records = new_batch(chroma.EmbeddingSet.from_dict(es), "production", x[: len(uris)] + 0.5, uris)
    path = directory / f"00000000000000000001-000001-{header.batch_id}.jsonl"
    write_batch(path, header, records)
    return path


def test_a_spilled_batch_left_by_a_dead_process_does_not_bring_an_erased_input_back():
    x = _train()
    dead = Path(".chroma") / "spill" / "queries" / "999999999-1"  # a pid no process has
    path = _spill(dead, ["/erase-me", "/keep-me"], x)
    report = chroma.delete(["/erase-me"])
    assert report.files == 1
    _, left, _ = read_batch(path)
    assert left.input_uris == ["/keep-me"]
    # Now a worker adopts and replays the orphan: only what was kept arrives.
    with chroma.QuerySession(SET) as q:
        q.log(input_uri="/new", embedding=x[0] + 0.5)
        assert q.flush(10)
    shutdown(timeout=10)
    assert sorted(_uris("production")) == ["/keep-me", "/new"]


def test_deleting_a_set_removes_its_spill_and_its_kept_batches_too():
    x = _train()
    _train(OTHER)
    spilled = _spill(Path(".chroma") / "spill" / SET_ID, ["/p"], x)  # a @recommend spill of this set
    other = _spill(Path(".chroma") / "spill" / "queries" / "999999999-1", ["/o"], x, OTHER)
    assert chroma.delete_set(SET) is True
    assert not spilled.exists() and other.exists()
    assert transport_for(chroma.load_config()).get_set(SET_ID) is None
    assert chroma.delete_set(SET) is False  # a second time: nothing there


def test_a_queued_record_is_stored_before_the_delete_so_it_cannot_arrive_after_it():
    x = _train()
    q = chroma.QuerySession(SET)
    q.log(input_uri="/queued", embedding=x[0] + 0.5)  # still in the background worker's queue
    chroma.delete(["/queued"])
    q.close()
    shutdown(timeout=10)
    assert "/queued" not in _uris("production")


def test_the_cli_deletes_with_yes_only(capsys):
    x = _train()
    with chroma.QuerySession(SET) as q:
        q.log(input_uri="/p1", embedding=x[0] + 0.5)
    assert main(["delete", "--uri", "/t/1"]) == EXIT_USAGE
    assert "add --yes" in capsys.readouterr().err
    assert main(["delete"]) == EXIT_USAGE
    capsys.readouterr()
    Path("uris.txt").write_text("/t/2\n\n/p1\n")
    assert main(["delete", "--uri", "/t/1", "--uris-from", "uris.txt", "--yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["training"], report["production"]) == (2, 1)
    assert main(["delete", "--set", SET_ID[:8], "--yes"]) == 0
    assert json.loads(capsys.readouterr().out) == {"set_id": SET_ID, "deleted": True}


@pytest.mark.slow
def test_deleting_over_the_service(chroma_server):
    x = _train()
    with chroma.QuerySession(SET) as q:
        q.log(input_uri="/p1", embedding=x[0] + 0.5)
    url = chroma_server.url
    # The same data on the service: upload what the embedded engine holds, through the CLI.
    header, page = transport_for(chroma.load_config()).records(SET_ID, "training", 0, 1000)
    write_batch(Path("t.jsonl"), header, page)
    assert main(["upload-training", "t.jsonl", "--chroma-url", url]) == 0
    report = chroma.delete(["/t/3", "/t/4"], chroma_server_url=url)
    assert (report.training, report.production) == (2, 0)
    remote = transport_for(chroma.load_config(chroma_url=url))
    _, left = remote.records(SET_ID, "training", 0, 1000)
    assert "/t/3" not in left.input_uris and len(left) == len(page) - 2
    assert chroma.delete_set(SET_ID, chroma_server_url=url) is True
    assert remote.get_set(SET_ID) is None
    # The embedded store was not touched by deletes sent to the service.
    assert len(_uris("training")) == len(page)


def test_engine_delete_drops_the_cached_model():
    x = _train()
    engine = Engine(SQLiteStore(".chroma"))
    before = engine.query(QueryRequest.of(SET, x[3:4], ["/q"]))[0]
    assert before.nearest[0].input_uri == "/t/3"
    engine.delete_records(["/t/3"])
    after = engine.query(QueryRequest.of(SET, x[3:4], ["/q"]))[0]
    assert after.nearest[0].input_uri != "/t/3"
