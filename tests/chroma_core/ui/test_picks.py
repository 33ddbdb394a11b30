"""A lasso's production inputs become a Selection: the value `chroma select` answers, ranked by its priority."""

from __future__ import annotations

import numpy as np
import pytest

from chroma_core.engine.selection import priority
from chroma_core.records import new_batch
from chroma_core.types import Selection
from chroma_core.ui.picks import lasso_selection
from chroma_core.ui.points import MAX_EXPORT, PointOutOfRangeError
from tests.chroma_core.drift.helpers import T0, blobs, log_window, training_set


@pytest.fixture
def watched(tmp_path):
    transport, es, known, novel = training_set(tmp_path, n=300)
    rng = np.random.default_rng(1)
    vectors = np.concatenate([blobs(rng, known, 30), blobs(rng, novel, 30)])
    log_window(transport, es, vectors, T0, "day", previews=[f"text {i}" for i in range(60)])
    return transport, es, known, novel


def test_the_lasso_becomes_a_selection_of_its_production_inputs(watched):
    transport, es, _, _ = watched
    engine = transport.engine
    indices = [5, 17, *range(310, 350)]  # two training points and forty production inputs
    selection, points = lasso_selection(engine.store, engine.query, es.id, [*indices, 320])
    assert isinstance(selection, Selection) and selection.considered == 40 and len(selection.picks) == 40
    assert sorted(points) == list(range(310, 350))  # training points are not candidates; each input once
    assert [p.rank for p in selection.picks] == list(range(1, 41))
    assert {p.input_uri for p in selection.picks} == {f"day/{i}" for i in range(10, 50)}
    uris = [p.input_uri for p in selection.picks]
    assert all(f"day/{point - 300}" == uri for point, uri in zip(points, uris, strict=True))
    priorities = [p.priority for p in selection.picks]
    assert priorities == sorted(priorities, reverse=True)
    assert priorities == [priority(p.result.to_dict()) for p in selection.picks]
    # The novel inputs (rows 30..49 here) rank above the known ones, as select ranks them.
    assert all(int(u.split("/")[1]) >= 30 for u in uris[:20])
    assert selection.recommended == sum(p.result.training_recommended for p in selection.picks) > 0
    assert Selection.from_dict(selection.to_dict()) == selection  # the file reads back as chroma select's JSON
    assert selection.picks[0].preview == f"text {uris[0].split('/')[1]}"


def test_inputs_stored_without_an_answer_are_judged_now(watched):
    transport, es, _, novel = watched
    rng = np.random.default_rng(5)
    transport.upload(*new_batch(es, "production", blobs(rng, novel, 5), [f"late/{i}" for i in range(5)]))
    engine = transport.engine
    selection, points = lasso_selection(engine.store, engine.query, es.id, list(range(355, 365)))
    assert selection.rescored == 5 and len(selection.picks) == 10 and sorted(points) == list(range(355, 365))
    late = [p for p in selection.picks if p.input_uri.startswith("late/")]
    assert len(late) == 5 and all(p.result.input_uri == p.input_uri and p.result.set_id == es.id for p in late)
    assert all("out_of_distribution" in p.result.recommendations for p in late)


def test_a_lasso_of_training_points_only_is_an_empty_selection(watched):
    transport, es, _, _ = watched
    selection, points = lasso_selection(transport.engine.store, transport.engine.query, es.id, [0, 1, 2])
    assert (selection.picks, selection.considered, points) == ((), 0, [])


def test_points_off_the_map_and_oversized_lassos_are_refused(watched):
    transport, es, _, _ = watched
    store, score = transport.engine.store, transport.engine.query
    with pytest.raises(PointOutOfRangeError, match="has 360 points"):
        lasso_selection(store, score, es.id, [360])
    with pytest.raises(PointOutOfRangeError, match="at most"):
        lasso_selection(store, score, es.id, list(range(MAX_EXPORT + 1)))
