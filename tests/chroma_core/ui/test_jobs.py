"""Maps of large sets are computed in the background: the caller gets progress at once, never a held request."""

from __future__ import annotations

import time

import numpy as np
import pytest

from chroma_core.errors import ChromaError, ConfigError, UnknownEmbeddingSetError
from chroma_core.records import new_batch
from chroma_core.ui import jobs, projection
from chroma_core.ui.jobs import Maps, Progress
from chroma_core.ui.projection import Projection, project
from tests.chroma_core.drift.helpers import T0, blobs, log_window, training_set


@pytest.fixture
def watched(tmp_path):
    transport, es, known, novel = training_set(tmp_path, n=300)
    rng = np.random.default_rng(1)
    log_window(transport, es, np.concatenate([blobs(rng, known, 30), blobs(rng, novel, 30)]), T0, "day")
    return transport, es


def _finish(maps: Maps, engine, set_id: str, method: str = "auto") -> tuple[Projection, list[Progress]]:
    seen: list[Progress] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = maps.get(engine, set_id, method)
        if isinstance(got, Projection):
            return got, seen
        seen.append(Progress(**{k: getattr(got, k) for k in ("set_id", "method", "total", "done")}))
        time.sleep(0.01)
    raise AssertionError("the map was not ready in 60 s")


def test_a_small_set_is_projected_in_the_request_and_kept(watched):
    transport, es = watched
    maps = Maps()
    first = maps.get(transport.engine, es.id, "auto")
    assert isinstance(first, Projection) and len(first) == 360
    assert maps.get(transport.engine, es.id, "auto") is first  # kept: the second load is a copy


def test_a_large_set_answers_progress_until_its_map_is_ready(watched, monkeypatch):
    transport, es = watched
    monkeypatch.setattr(jobs, "INLINE_POINTS", 100)  # this set (360 points) is "too large to project at once"
    monkeypatch.setattr(projection, "CHUNK", 5)
    maps = Maps()
    started = time.monotonic()
    first = maps.get(transport.engine, es.id, "auto")
    assert time.monotonic() - started < 0.5  # answered at once: the projection runs in the background
    assert isinstance(first, Progress) and first.total == 360 and 0 <= first.done <= 360
    assert first.to_dict()["status"] == "projecting"
    done, seen = _finish(maps, transport.engine, es.id)
    assert [p.done for p in seen] == sorted(p.done for p in seen)  # progress only grows
    assert np.array_equal(done.xy, project(transport.engine.store, es.id).xy)  # the same map as in one go
    assert np.array_equal(done.cluster, project(transport.engine.store, es.id).cluster)
    assert maps.get(transport.engine, es.id, "auto") is done


def test_a_new_revision_gets_a_new_map(watched, monkeypatch):
    transport, es = watched
    maps = Maps()
    before = maps.get(transport.engine, es.id, "auto")
    rng = np.random.default_rng(2)
    transport.upload(*new_batch(es, "production", blobs(rng, np.zeros((1, 24)), 4), [f"late/{i}" for i in range(4)]))
    after = maps.get(transport.engine, es.id, "auto")
    assert isinstance(after, Projection) and len(after) == len(before) + 4  # type: ignore[arg-type]


def test_a_failed_job_raises_once_and_the_next_ask_starts_again(watched, monkeypatch):
    transport, es = watched
    monkeypatch.setattr(jobs, "INLINE_POINTS", 0)
    store = transport.engine.store
    original = store.vectors

    def broken(*args, **kwargs):
        raise ChromaError("the disk went away")

    monkeypatch.setattr(store, "vectors", broken)
    maps = Maps()
    assert isinstance(maps.get(transport.engine, es.id, "auto"), Progress)
    with pytest.raises(ChromaError, match="disk went away"):
        _finish(maps, transport.engine, es.id)
    monkeypatch.setattr(store, "vectors", original)
    done, _ = _finish(maps, transport.engine, es.id)
    assert len(done) == 360


def test_unknown_sets_and_methods_are_errors_at_once(watched):
    transport, es = watched
    maps = Maps()
    with pytest.raises(UnknownEmbeddingSetError):
        maps.get(transport.engine, "f" * 40, "auto")
    with pytest.raises(ConfigError, match="use one of auto, pca, umap"):
        maps.get(transport.engine, es.id, "tsne")
