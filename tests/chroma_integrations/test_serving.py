"""@recommend on real functions, methods and async handlers, against the embedded engine and a real service."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import threading
import time

import numpy as np
import pytest

import chroma
from chroma_core import guard
from chroma_core.delivery import WorkerOptions
from chroma_core.engine.store import SQLiteStore
from chroma_integrations.serving import Recommended, Recommender, recommend
from tests.chroma_core.delivery.audit import watch
from tests.conftest import SET, ChromaServer, clusters

SET_ID = chroma.embedding_set_id(SET)


def production_count(persist=".chroma") -> int:
    info = SQLiteStore(persist).get_set(SET_ID)
    return 0 if info is None else info.production


def make(**kw):
    calls = []

    @recommend(embedding=lambda x: x, input_uri=lambda x: f"in/{int(x[0] * 1000)}", embedding_set=SET, **kw)
    def predict(x):
        calls.append(1)
        return float(x.sum())

    return predict, calls


def test_disabled_is_a_pass_through(monkeypatch):
    def f(x):
        return x

    assert recommend(embedding=lambda x: x, embedding_set=SET, enabled=False)(f) is f
    monkeypatch.setenv("CHROMA_DISABLED", "1")
    assert recommend(embedding=lambda x: x, embedding_set=SET)(f) is f


def test_async_mode_stores_every_production_record_once():
    predict, calls = make()
    xs = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    assert [predict(x) for x in xs] == [float(x.sum()) for x in xs]
    assert len(calls) == 50  # the wrapped function ran exactly once per call
    assert predict.chroma_flush(10)
    assert production_count() == 50
    stats = predict.chroma_stats()
    assert stats["sent"] == 50 and stats["dropped"] == {}


def test_methods_and_batches():
    class Model:
        @recommend(
            embedding=lambda self, batch: batch,
            input_uri=lambda self, batch: [f"b/{i}" for i in range(len(batch))],
            embedding_set=SET,
        )
        def predict(self, batch):
            return batch.sum(axis=1).tolist()

    batch = np.ones((7, 4), np.float32)
    assert Model().predict(batch) == [4.0] * 7
    assert Model.predict.chroma_flush(10)
    assert production_count() == 7


def test_async_def_handler():
    @recommend(embedding=lambda x: x, embedding_set=SET)
    async def handler(x):
        await asyncio.sleep(0)
        return "ok"

    async def main():
        return await asyncio.gather(*(handler(np.full(4, i + 1, np.float32)) for i in range(10)))

    assert asyncio.run(main()) == ["ok"] * 10
    assert handler.chroma_stats()["dropped"] == {}


def test_user_exceptions_pass_through_untouched():
    class Boom(Exception):
        pass

    err = Boom("user bug")

    @recommend(embedding=lambda x: x, embedding_set=SET)
    def predict(x):
        raise err

    with pytest.raises(Boom) as info:
        predict(np.ones(4))
    assert info.value is err


def test_chroma_errors_never_break_the_prediction(internal_errors, caplog):
    @recommend(embedding=lambda x: x["missing"], embedding_set=SET)  # our side fails: KeyError in the extractor
    def predict(x):
        return 42

    with caplog.at_level(logging.ERROR, logger="chroma"):
        assert [predict({}) for _ in range(3)] == [42, 42, 42]  # swallowed, always: there is no test mode
    captured = internal_errors.take()
    assert [what for what, _ in captured] == ["recommend"] * 3
    assert all(isinstance(exc, KeyError) for _, exc in captured)
    assert caplog.text.count("recommend failed") == 1  # one traceback; the repeats are counted
    assert guard.error_counts()["recommend"] == 3


def test_sync_mode_returns_results_within_budget():
    x, labels, _ = clusters(n_per=40, dim=8)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x)
    seen = []
    predict, _ = make(mode="sync", budget_ms=2000, return_results=True, on_result=lambda u, r: seen.append((u, r)))
    out = predict(x[3])
    assert isinstance(out, Recommended) and out.prediction == float(x[3].sum())
    assert out.results[0] is not None and out.results[0].not_useful
    assert seen == [(f"in/{int(x[3][0] * 1000)}", out.results[0])]
    assert predict.chroma_flush(10)
    (record,) = SQLiteStore(".chroma").records(SET_ID, "production", 0, 1)
    assert record.result.stored() == out.results[0].stored()


def test_sync_mode_past_the_budget_returns_without_results(tmp_path):
    from tests.chroma_core.transport.test_http import Scripted

    class Slow(Scripted):
        pass

    release = threading.Event()
    answered = threading.Event()
    with Slow([]) as server:
        original = server.server.RequestHandlerClass.do_POST

        def held_post(handler):
            release.wait(30)  # the service answers only once the prediction has come back
            try:
                return original(handler)
            finally:
                answered.set()

        server.server.RequestHandlerClass.do_POST = held_post
        predict, _ = make(
            mode="sync",
            budget_ms=100,
            return_results=True,
            chroma_server_url=server.url,
            worker_options=WorkerOptions(spill_max_bytes=0),
        )
        out = predict(np.ones(8, np.float32))
        # It returned while the query was still held: the caller did not wait for the answer. (How long the
        # budget takes is measured in benchmarks/bench_serving.py.)
        assert not answered.is_set()
        release.set()
        assert answered.wait(30)
    assert out.prediction == 8.0 and out.results == [None]
    assert predict.chroma_stats()["over_budget"] == 1


def test_sync_mode_without_an_answer_gives_none_and_says_so_once(caplog):
    seen = []
    predict, _ = make(mode="sync", budget_ms=5000, return_results=True, on_result=lambda u, r: seen.append((u, r)))
    with caplog.at_level(logging.WARNING, logger="chroma"):
        outs = [predict(np.full(8, float(i), np.float32)) for i in range(1, 4)]  # no training data: no answers
    assert [o.results for o in outs] == [[None]] * 3
    assert seen == [(f"in/{i * 1000}", None) for i in range(1, 4)]
    assert caplog.text.count("could not answer") == 1
    assert predict.chroma_flush(10) and predict.chroma_stats()["unanswered"] == 3
    assert production_count() == 3  # stored all the same


def test_switched_off_and_on_at_run_time(monkeypatch):
    predict, calls = make()
    x = np.ones(8, np.float32)
    assert predict(x) == 8.0 and predict.chroma_flush(10)
    predict.chroma.enabled = False
    assert predict(x) == 8.0
    monkeypatch.setenv("CHROMA_DISABLED", "1")
    predict.chroma.enabled = True
    assert predict(x) == 8.0
    monkeypatch.delenv("CHROMA_DISABLED")
    assert predict(x) == 8.0 and predict.chroma_flush(10)
    assert len(calls) == 4  # exactly once per call, on or off
    assert predict.chroma_stats()["sent"] == 2  # only the calls made while it was on


def test_the_decorator_pickles_without_its_process_state():
    predict, _ = make()
    assert predict(np.ones(8, np.float32)) == 8.0  # the worker, its thread and a pool exist now
    recommender = predict.chroma
    state = recommender.__getstate__()
    assert state["_process"] is None and state["_lock"] is None
    cloudpickle = pytest.importorskip("cloudpickle")  # what MLflow pickles models with
    again = pickle.loads(cloudpickle.dumps(predict))
    assert isinstance(again.chroma, Recommender) and again.chroma._process is None
    assert again(np.full(8, 2.0, np.float32)) == 16.0  # set up again, lazily, on first use
    assert again.chroma_flush(10) and predict.chroma_flush(10)
    assert production_count() == 2


@pytest.mark.slow
def test_service_down_spills_then_replays_in_order_exactly_once(tmp_path):
    server = ChromaServer(tmp_path / "data")  # not started yet: the service is down
    predict, _ = make(
        chroma_server_url=server.url,
        worker_options=WorkerOptions(batch_size=10, flush_interval=0.05, retry_backoff_max=0.5),
    )
    xs = np.random.default_rng(1).normal(size=(100, 8)).astype(np.float32)
    predict(xs[0])  # set up (config read, worker made) on the first call
    with watch(thread=threading.current_thread()) as caller:
        for x in xs[1:]:
            predict(x)
    assert caller.events == []  # predictions never touched the network or the disk: nothing to wait for
    deadline = time.monotonic() + 20
    while predict.chroma_stats().get("spilled", 0) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predict.chroma_stats()["spilled"] == 100
    server.start()
    try:
        assert predict.chroma_flush(30)
        stats = predict.chroma_stats()
        assert stats["replayed"] == 100 and stats["spill_files"] == 0 and stats["dropped"] == {}
        info = chroma.QuerySession(SET, chroma_server_url=server.url).transport.get_set(SET_ID)
        assert info.production == 100
    finally:
        server.stop()


def test_full_spill_directory_drops_are_counted_and_warned(tmp_path, caplog):
    dead = ChromaServer(tmp_path / "never")
    predict, _ = make(
        chroma_server_url=dead.url, worker_options=WorkerOptions(batch_size=5, flush_interval=0.02, spill_max_bytes=1)
    )
    with caplog.at_level(logging.WARNING, logger="chroma"):
        for x in np.ones((20, 8), np.float32):
            assert predict(x) == 8.0
        deadline = time.monotonic() + 20
        while predict.chroma_stats()["dropped"].get("spill_full", 0) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert predict.chroma_stats()["dropped"]["spill_full"] == 20
    assert "spill_full" in caplog.text


def _child(q):
    predict, _ = make()
    predict(np.full(8, 3.0, np.float32))
    q.put(predict.chroma_flush(10))


def test_survives_fork():
    predict, _ = make()
    predict(np.full(8, 1.0, np.float32))  # the parent's worker thread exists now
    assert predict.chroma_flush(10)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(30)
    assert p.exitcode == 0 and q.get(timeout=5) is True
    assert production_count() == 2


@pytest.mark.slow
def test_ten_thousand_predictions_while_the_service_is_killed_twice(tmp_path):
    server = ChromaServer(tmp_path / "data").start()
    predict, _ = make(
        chroma_server_url=server.url, worker_options=WorkerOptions(flush_interval=0.05, retry_backoff_max=0.5)
    )
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(10_000, 8)).astype(np.float32)
    uris_x = xs.copy()
    uris_x[:, 0] = np.arange(10_000) / 1000 + 0.0001  # unique input names: in/<i>
    predict(uris_x[0])  # set up on the first call
    try:
        with watch(thread=threading.current_thread()) as caller:
            for i, x in enumerate(uris_x[1:], 1):
                if i in (3000, 6500):
                    with caller.pause():
                        server.kill()
                if i in (4500, 8000):
                    with caller.pause():
                        server.start()
                assert predict(x) == pytest.approx(float(x.sum()))
        # No prediction did I/O on the caller's thread, so none could wait on the dead service. (The time each
        # call takes, service up and down, is measured in benchmarks/bench_serving.py.)
        assert caller.events == []
        assert predict.chroma_flush(60), predict.chroma_stats()
        stats = predict.chroma_stats()
        info = chroma.QuerySession(SET, chroma_server_url=server.url).transport.get_set(SET_ID)
        assert info.production == 10_000, stats
        assert stats["dropped"] == {}
    finally:
        server.stop()


def test_async_answers_given_to_on_result_are_stored_with_the_records():
    x, _, _ = clusters(n_per=40, dim=8)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x)
    seen = {}
    predict, _ = make(on_result=lambda uri, result: seen.__setitem__(uri, result))
    for row in x[:10]:
        predict(row + 0.001)
    assert predict.chroma_flush(10)
    records = SQLiteStore(".chroma").records(SET_ID, "production", 0, 10)
    assert len(records) == len(seen) == 10
    for record in records:
        assert record.result.stored() == seen[record.input_uri].stored()
        assert record.result.recommendation == "not_useful"
    assert chroma.select(SET, n=3).considered == 10
