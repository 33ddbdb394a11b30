"""The answer codec: any QueryResult stored as columns comes back equal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chroma_core.engine.answers import SCORES, THRESHOLDS, answer_row, result_of
from chroma_core.types import TAGS, Neighbor, QueryResult

numbers = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 5).map(float))


def values(names):
    # Usually exactly the named keys; sometimes some missing, and extra keys (e.g. training_size) beside them.
    named = st.fixed_dictionaries({}, optional={n: numbers for n in names})
    extra = st.dictionaries(st.sampled_from(["training_size", "min_training", "custom"]), numbers, max_size=2)
    return st.tuples(named, extra).map(lambda t: {**t[1], **t[0]})


results = st.builds(
    QueryResult,
    input_uri=st.just("/x"),
    recommendations=st.lists(st.sampled_from([*TAGS, "a_tag_from_the_future"]), unique=True, max_size=4).map(tuple),
    training_recommended=st.booleans(),
    not_useful=st.booleans(),
    scores=values(SCORES),
    thresholds=values(THRESHOLDS),
    nearest=st.lists(
        st.builds(
            Neighbor, st.text(min_size=1, max_size=8), st.floats(-1, 1), st.one_of(st.none(), st.text(max_size=4))
        ),
        max_size=3,
    ).map(tuple),
    set_id=st.just("s"),
)


@settings(max_examples=300, deadline=None)
@given(results)
def test_any_result_round_trips_through_its_columns(result):
    assert result_of(answer_row(result), "/x", "s") == result


def test_no_answer_is_all_null():
    assert set(answer_row(None)) == {None}
    assert result_of(answer_row(None), "/x", "s") is None
