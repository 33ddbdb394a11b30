"""The map: every stored point projected, in bounded memory, with the categories of the stored answers."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from chroma_core.errors import UnknownEmbeddingSetError
from chroma_core.ui import projection
from chroma_core.ui.points import MAX_EXPORT, PointOutOfRangeError, describe, export_rows
from chroma_core.ui.projection import CATEGORIES, CLUSTERS, NO_CLUSTER, Projection, project
from tests.chroma_core.drift.helpers import T0, blobs, log_window, training_set


@pytest.fixture
def watched(tmp_path):
    transport, es, known, novel = training_set(tmp_path, n=300)
    rng = np.random.default_rng(1)
    log_window(
        transport,
        es,
        np.concatenate([blobs(rng, known, 30), blobs(rng, novel, 30)]),
        T0,
        "day",
        previews=[f"text {i}" for i in range(60)],
    )
    return transport.engine.store, es.id


def test_every_point_is_on_the_map_within_the_unit_square(watched):
    store, set_id = watched
    p = project(store, set_id)
    assert (len(p), p.training, p.production) == (360, 300, 60)
    assert np.isfinite(p.xy).all() and np.abs(p.xy).max() <= 1.0
    assert np.abs(p.xy).max() > 0.9  # scaled to fill the plane, not squeezed into a corner
    assert (p.category[:300] == CATEGORIES.index("training")).all()
    assert np.isnan(p.novelty[:300]).all() and np.isfinite(p.novelty[300:]).all()


def test_categories_follow_the_stored_answers(watched):
    store, set_id = watched
    p = project(store, set_id)
    answers = store.answers(set_id)
    want = np.where(answers.training_recommended, 1, np.where(answers.not_useful, 2, 3))
    assert (p.category[300 + answers.rows] == want).all()
    assert 0 < (want == 1).sum() < 60  # the novel half is recommended, the known half is not (all of it)
    novel_rows = answers.rows[answers.training_recommended]
    assert np.median(p.novelty[300 + novel_rows]) > np.median(p.novelty[300:][p.category[300:] == 3])


def test_the_binary_body_round_trips(watched):
    p = project(*watched)
    body = p.to_bytes()
    q = Projection.from_bytes(body)
    assert np.array_equal(q.xy, p.xy) and np.array_equal(q.category, p.category)
    assert np.array_equal(np.isnan(q.novelty), np.isnan(p.novelty))
    assert q.header() == p.header() and q.times is not None and q.times[0] >= T0
    assert np.array_equal(q.cluster, p.cluster) and np.array_equal(np.isnan(q.time), np.isnan(p.time))
    assert np.array_equal(q.time[300:], p.time[300:])
    assert len(body) <= 18 * len(p) + 1024  # 18 bytes a point: no JSON per point


def test_a_layout_1_reader_still_reads_a_layout_2_body(watched):
    p = project(*watched)
    body = p.to_bytes()
    # What the first page version read: header, then xy, novelty and categories, ignoring anything after.
    (length,) = struct.unpack_from("<I", body)
    n, at = len(p), 4 + length
    assert np.array_equal(np.frombuffer(body, "<f4", 2 * n, at).reshape(n, 2), p.xy)
    assert np.array_equal(np.frombuffer(body, np.uint8, n, at + 12 * n), p.category)
    assert json.loads(body[4 : 4 + length])["layout"] == 2


def test_each_point_has_its_time_and_its_cluster(watched):
    store, set_id = watched
    p = project(store, set_id)
    answers = store.answers(set_id)
    assert p.clusters == CLUSTERS and (p.cluster < p.clusters).all()  # 360 points: 20 clusters, all placed
    assert np.isnan(p.time[:300]).all() and p.times is not None
    assert np.allclose(p.time[300 + answers.rows], answers.times - p.times[0], atol=0.01)
    assert np.nanmax(p.time) > 0.8 * 86400  # the day's spread survives float32: relative to the first input
    # The novel half of production (rows 30..59) lands in clusters training hardly reaches.
    training_counts = np.bincount(p.cluster[:300], minlength=p.clusters)
    assert np.mean(training_counts[p.cluster[330:]] <= 3) > 0.9
    assert np.mean(training_counts[p.cluster[300:330]] > 3) > 0.9


def test_a_set_too_small_to_cluster_has_no_clusters(tmp_path):
    transport, es, _, _ = training_set(tmp_path, n=12)
    p = project(transport.engine.store, es.id)
    assert p.clusters == 0 and (p.cluster == NO_CLUSTER).all() and np.isnan(p.time).all() and p.times is None
    assert Projection.from_bytes(p.to_bytes()).clusters == 0


def test_reading_in_small_chunks_gives_the_same_map(watched, monkeypatch):
    store, set_id = watched
    whole = project(store, set_id)
    monkeypatch.setattr(projection, "CHUNK", 7)
    assert np.allclose(project(store, set_id).xy, whole.xy, atol=1e-5)


def test_the_fit_sample_bounds_what_is_read_at_once(watched, monkeypatch):
    store, set_id = watched
    monkeypatch.setattr(projection, "FIT_SAMPLE", 50)
    monkeypatch.setattr(projection, "CHUNK", 64)
    read: list[int] = []
    original = store.vectors

    def counted(*args, **kwargs):
        out = original(*args, **kwargs)
        read.append(len(out))
        return out

    monkeypatch.setattr(store, "vectors", counted)
    p = project(store, set_id)
    assert len(p) == 360 and max(read) <= 64


def test_unknown_set_names_the_fix(tmp_path, watched):
    store, _ = watched
    with pytest.raises(UnknownEmbeddingSetError, match="chroma-ml sets"):
        project(store, "f" * 40)


def test_a_point_shows_its_input_answer_and_nearest_training_inputs(watched):
    store, set_id = watched
    p = describe(store, set_id, 300)
    assert p["mode"] == "production" and p["input_uri"] == "day/0" and p["preview"] == "text 0"
    assert p["answer"]["input_uri"] == "day/0" and len(p["nearest"]) == 5
    sims = [n["similarity"] for n in p["nearest"]]
    assert sims == sorted(sims, reverse=True) and all(n["input_uri"].startswith("train/") for n in p["nearest"])
    t = describe(store, set_id, 4)
    assert t["mode"] == "training" and t["answer"] is None
    assert "train/4" not in {n["input_uri"] for n in t["nearest"]}  # not its own neighbour


def test_points_off_the_map_and_oversized_exports_are_refused(watched):
    store, set_id = watched
    with pytest.raises(PointOutOfRangeError, match="has 360 points"):
        describe(store, set_id, 360)
    with pytest.raises(PointOutOfRangeError, match="at most"):
        export_rows(store, set_id, list(range(MAX_EXPORT + 1)))


def test_an_export_lists_each_selected_point_once(watched):
    store, set_id = watched
    rows = export_rows(store, set_id, [301, 2, 301, 359])
    assert [(r["index"], r["mode"]) for r in rows] == [(2, "training"), (301, "production"), (359, "production")]
    assert rows[1]["input_uri"] == "day/1" and rows[1]["answer"] in {"training_recommended", "neutral", "not_useful"}


@pytest.mark.slow
def test_method_umap_places_every_point_and_keeps_neighbourhoods(watched):
    """UMAP (the [umap] extra), fitted on the same bounded sample, places every point, and a point's nearest map
    neighbour is of its own cluster at least as often as under PCA. Slow: numba compiles umap-learn on first use."""
    pytest.importorskip("umap")
    store, set_id = watched
    u, p = project(store, set_id, method="umap"), project(store, set_id, method="pca")
    assert u.method == "umap" and p.method == "pca" and len(u) == len(p) == 360
    assert np.isfinite(u.xy).all() and np.abs(u.xy).max() <= 1.0
    assert np.array_equal(u.category, p.category) and np.array_equal(u.cluster, p.cluster)
    truth = p.cluster  # the clusters are computed in the full space, whatever the projection

    def agreement(xy: np.ndarray) -> float:
        d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return float((truth[np.argmin(d, axis=1)] == truth).mean())

    assert agreement(u.xy) >= agreement(p.xy) - 0.02


def test_the_map_clusters_are_those_of_chroma_clusters(watched):
    from chroma_core.drift.compute import cluster_report

    store, set_id = watched
    p = project(store, set_id)
    report = cluster_report(store, set_id, k=CLUSTERS)
    training = np.bincount(p.cluster[:300], minlength=p.clusters)
    production = np.bincount(p.cluster[300:], minlength=p.clusters)
    assert {c.cluster: (c.training, c.production) for c in report.clusters} == {
        c: (int(training[c]), int(production[c])) for c in range(p.clusters)
    }
