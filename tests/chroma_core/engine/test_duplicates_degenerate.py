"""The duplicate finder on degenerate sets (all copies, one record, fewer records than neighbours looked at, exact
ties, groups at distance 0): its groups are those of a brute-force search, every record is in at most one, and it
never crashes. All-zero embeddings are refused when logged (tests/chroma_core/test_sessions.py), so none reach it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from chroma_core.engine.duplicates import NEIGHBOURS, copies_of, training_groups
from chroma_core.engine.scoring import SetModel
from chroma_core.types import QueryRequest, Thresholds
from chroma_core.types.duplicates import DuplicateGroup

finite = st.floats(-5, 5, allow_nan=False, width=32)
thresholds = st.one_of(st.just(0.0), st.floats(0, 2, allow_nan=False))
#: Distances apart that float32 rounding cannot blur: the brute force and the finder agree away from this margin.
MARGIN = 1e-3


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # float64 squares neither underflow nor overflow here


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.maximum(1.0 - _unit(a) @ _unit(b).T, 0.0)
    d[d < 1e-9] = 0.0  # a copy in float64 is a copy
    return d


@st.composite
def directions(draw, max_count: int = 4, d: int | None = None) -> np.ndarray:
    """A few embeddings, pairwise either the same direction or at least MARGIN apart."""
    d = draw(st.integers(2, 6)) if d is None else d
    base = draw(arrays(np.float32, (draw(st.integers(1, max_count)), d), elements=finite))
    base[np.linalg.norm(base, axis=1) == 0] = 1.0
    dist = _distances(base, base)
    assume(((dist == 0) | (dist > MARGIN)).all())
    return base


@st.composite
def copies(draw, max_n: int) -> np.ndarray:
    """Rows drawn from a few directions, each row a positive multiple of its direction: exact copies galore."""
    base = draw(directions())
    n = draw(st.integers(1, max_n))
    rows = draw(st.lists(st.integers(0, len(base) - 1), min_size=n, max_size=n))
    # Tiny and huge multiples too: accepted embeddings whose squares underflow or overflow float32.
    scale = draw(st.lists(st.sampled_from([1.0, 1.0, 0.5, 3.0, 1e-3, 1e3, 1e-25, 1e25]), min_size=n, max_size=n))
    x = (base[rows] * np.array(scale, np.float32)[:, None]).astype(np.float32)
    assume(x.any(axis=1).all())  # an all-zero embedding is refused when logged
    dist = _distances(x, x)
    assume(((dist == 0) | (dist > MARGIN)).all())  # subnormal rounding can move a tiny copy's direction
    return x


def _model(x: np.ndarray) -> SetModel:
    model = SetModel("s", x.shape[1])
    model.add(x, [f"/t/{i}" for i in range(len(x))], [None] * len(x), [None] * len(x))
    return model


def _components(dist: np.ndarray, threshold: float) -> list[set[int]]:
    n = len(dist)
    seen: set[int] = set()
    out = []
    for s in range(n):
        if s in seen:
            continue
        comp, todo = {s}, [s]
        while todo:
            i = todo.pop()
            for j in np.flatnonzero(dist[i] <= threshold):
                if int(j) not in comp:
                    comp.add(int(j))
                    todo.append(int(j))
        seen |= comp
        if len(comp) > 1:
            out.append(comp)
    return out


def _check_well_formed(groups: list[DuplicateGroup], n: int, threshold: float) -> None:
    rows = [r for g in groups for r in g.rows]
    assert len(rows) == len(set(rows)), "a record is in two groups"
    assert all(0 <= r < n for r in rows)
    for g in groups:
        assert len(g.rows) >= 2 and list(g.rows) == sorted(g.rows)
        assert g.input_uris == tuple(f"/t/{r}" for r in g.rows)
        assert 0.0 <= g.max_distance <= threshold
    assert [len(g.rows) for g in groups] == sorted((len(g.rows) for g in groups), reverse=True)


@settings(max_examples=200, deadline=None)
@given(copies(max_n=NEIGHBOURS + 1), thresholds)
def test_small_sets_group_exactly_like_a_brute_force_search(x, threshold):
    # Up to NEIGHBOURS + 1 records every record looks at every other one: the groups are exactly the connected
    # components of the pairs within the threshold, whatever the ties; exact copies (a record and a positive
    # multiple of it) are at distance 0, so they are grouped even at threshold 0.
    dist = _distances(x, x)
    assume(not ((np.abs(dist - threshold) < MARGIN) & (dist > 0)).any())
    groups = training_groups(_model(x), threshold)
    _check_well_formed(groups, len(x), threshold)
    assert sorted(sorted(g.rows) for g in groups) == sorted(sorted(c) for c in _components(dist, threshold))
    for g in groups:
        inside = dist[np.ix_(g.rows, g.rows)]
        assert abs(g.max_distance - inside[inside <= threshold].max()) < 1e-5


@settings(max_examples=60, deadline=None)
@given(copies(max_n=4 * NEIGHBOURS), st.sampled_from([0.0, 1e-4, 1e-3 / 2]))
def test_copies_of_one_direction_are_one_group_however_many(x, threshold):
    # More copies than neighbours looked at: each record sees only some of its copies (ties), yet every copy of a
    # direction is linked to the others, and distinct directions (at least MARGIN apart) are never merged.
    groups = training_groups(_model(x), threshold)
    _check_well_formed(groups, len(x), threshold)
    distinct = {tuple(np.round(_unit(x[[i]])[0], 6)): i for i in range(len(x))}
    assert sorted(sorted(g.rows) for g in groups) == sorted(sorted(c) for c in _components(_distances(x, x), threshold))
    assert all(g.max_distance == 0.0 for g in groups)
    assert len(groups) <= len(distinct)


@settings(max_examples=150, deadline=None)
@given(copies(max_n=12), st.data(), thresholds, st.integers(1, 5))
def test_copies_are_the_inputs_within_the_threshold_of_their_nearest_training_record(x, data, threshold, chunk):
    # Production inputs: copies of training records (ties among the training copies) and other directions.
    queries = np.concatenate([x[:3] * 2.0, data.draw(directions(max_count=6, d=x.shape[1]))])
    dist = _distances(queries, x)
    nearest = dist.min(axis=1)
    assume(not ((np.abs(nearest - threshold) < MARGIN) & (nearest > 0)).any())
    chunks = ((s, queries[s : s + chunk]) for s in range(0, len(queries), chunk))
    found = copies_of(_model(x), chunks, lambda rows: [f"/p/{r}" for r in rows], threshold)
    assert [c.row for c in found] == [int(i) for i in np.flatnonzero(nearest <= threshold)]
    for c in found:
        assert c.input_uri == f"/p/{c.row}" and c.training_uri == f"/t/{c.training_row}"
        # With ties any one of the nearest training records will do, but it must be one of the nearest.
        assert abs(dist[c.row, c.training_row] - nearest[c.row]) < 1e-5
        assert abs(c.distance - nearest[c.row]) < 1e-5 and 0.0 <= c.distance <= threshold


def test_no_or_one_record_has_no_groups_and_copies_nothing():
    one = np.ones((1, 3), np.float32)
    assert training_groups(_model(one), 2.0) == []
    assert copies_of(_model(one[:0]), iter([(0, one)]), lambda rows: ["/p/0"], 2.0) == []
    assert [c.training_row for c in copies_of(_model(one), iter([(0, 2 * one)]), lambda r: ["/p/0"], 0.0)] == [0]


def test_an_exact_tie_links_both_sides():
    # The middle record is at the same distance from the two others, which are twice as far from each other.
    angle = np.array([-0.3, 0.0, 0.3])
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    between = 1.0 - np.cos(0.3)
    (group,) = training_groups(_model(x), between + 1e-4)
    assert group.rows == (0, 1, 2) and abs(group.max_distance - between) < 1e-5
    assert training_groups(_model(x), between - 1e-4) == []


@settings(max_examples=100, deadline=None)
@given(copies(max_n=10), st.sampled_from([0.5, 2.0, 1e-20, 1e20]))
def test_a_query_copying_a_training_record_is_a_near_duplicate_at_threshold_0_as_duplicates_says(x, scale):
    # The query tag and the duplicate finder share one distance: at threshold 0 both call exact copies duplicates.
    model = _model(x)
    queries = (x * np.float32(scale)).astype(np.float32)
    assume(len(x) >= 2 and queries.any(axis=1).all() and np.isfinite(queries).all())
    assume((np.diagonal(_distances(queries, x)) == 0).all())  # a subnormal product is no longer a copy
    th = Thresholds(min_training=2, near_duplicate=0.0)
    results = model.query(QueryRequest.of("s", queries, [f"q{i}" for i in range(len(x))], [None] * len(x), th))
    assert all("near_duplicate" in r.recommendations for r in results), results
    found = copies_of(model, iter([(0, queries)]), lambda rows: [f"/p/{r}" for r in rows], 0.0)
    assert [c.row for c in found] == list(range(len(x))) and all(c.distance == 0.0 for c in found)
