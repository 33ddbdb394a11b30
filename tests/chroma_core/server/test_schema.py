"""The wire models and the public value types can never drift apart."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

pydantic = pytest.importorskip("pydantic")

from chroma_core.server import schema  # noqa: E402
from chroma_core.types import (  # noqa: E402
    MAX_PICKS,
    TAGS,
    DeleteReport,
    Neighbor,
    Pick,
    QueryResult,
    Selection,
    SelectRequest,
    SetInfo,
    Thresholds,
    UploadReport,
)

# ---- values of every public type that goes over the wire -------------------------------------------------------------

text = st.text(max_size=12)
counts = st.integers(min_value=0, max_value=10**9)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
maybe_float = st.none() | finite
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | finite | text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3)
)
score_names = st.sampled_from(["novelty", "near_duplicate", "uncertainty", "label_disagreement"])

neighbors = st.builds(Neighbor, input_uri=text, similarity=finite, label=scalars)
results = st.builds(
    QueryResult,
    input_uri=text,
    recommendations=st.lists(st.sampled_from(TAGS), unique=True).map(tuple),
    training_recommended=st.booleans(),
    not_useful=st.booleans(),
    scores=st.dictionaries(score_names, maybe_float),
    thresholds=st.dictionaries(score_names, maybe_float),
    nearest=st.lists(neighbors, max_size=3).map(tuple),
    set_id=text,
)
set_infos = st.builds(
    SetInfo,
    id=text,
    embedding_set=st.dictionaries(text, scalars, min_size=1, max_size=4),
    dimension=st.integers(1, 16384),
    training=counts,
    production=counts,
    created_at=finite,
)
reports = st.builds(
    UploadReport,
    batch_id=text,
    set_id=text,
    mode=st.sampled_from(["training", "production"]),
    read=counts,
    stored=counts,
    duplicates=counts,
    problems=st.lists(text, max_size=3).map(tuple),
)
deletes = st.builds(
    DeleteReport, training=counts, production=counts, sets=st.lists(text, max_size=3).map(tuple), files=counts
)
picks = st.builds(
    Pick,
    rank=st.integers(1, MAX_PICKS),
    id=text,
    input_uri=text,
    priority=finite,
    result=results,
    inferences=json_values,
    time=finite,
    similarity_to_picked=maybe_float,
    preview=st.none() | text,
)
selections = st.builds(
    Selection,
    set_id=text,
    picks=st.lists(picks, max_size=3).map(tuple),
    considered=counts,
    recommended=counts,
    near_duplicates_dropped=counts,
    rescored=counts,
)


def _nested_model(annotation: typing.Any) -> type[pydantic.BaseModel] | None:
    """The model a field holds, alone or in a list (None for a plain value)."""
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def assert_same_fields(model: type[pydantic.BaseModel], data: dict[str, typing.Any], where: str) -> None:
    """Every key of ``data`` is a field of ``model`` and every field is a key, down through nested models."""
    assert set(model.model_fields) == set(data), f"{where}: {model.__name__} vs to_dict()"
    for name, field in model.model_fields.items():
        inner = _nested_model(field.annotation)
        if inner is None:
            continue
        values = data[name] if isinstance(data[name], list) else [data[name]]
        for value in values:
            assert_same_fields(inner, value, f"{where}.{name}")


def assert_mirrors(model: type[pydantic.BaseModel], data: dict[str, typing.Any], where: str) -> None:
    """Same field names, and the dict passes the model with no coercion (strict) and comes back unchanged."""
    assert_same_fields(model, data, where)
    assert model.model_validate(data, strict=True).model_dump() == data


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (schema.SetOut, set_infos),
        (schema.UploadOut, reports),
        (schema.QueryResultOut, results),
        (schema.SelectionOut, selections),  # and PickOut, QueryResultOut, NeighborOut inside it
        (schema.DeleteOut, deletes),
    ],
    ids=["SetInfo", "UploadReport", "QueryResult", "Selection", "DeleteReport"],
)
@given(data=st.data())
def test_each_response_model_mirrors_its_value_type(model, values, data):
    value = data.draw(values)
    assert_mirrors(model, value.to_dict(), type(value).__name__)


def test_mismatches_are_caught():
    """The check itself fails on a renamed field, a missing one and a changed type."""
    data = SetInfo("s", {"m": "x"}, 4, 1, 0).to_dict()
    with pytest.raises(AssertionError):
        assert_mirrors(schema.SetOut, {**{k: v for k, v in data.items() if k != "training"}, "trained": 1}, "renamed")
    with pytest.raises(AssertionError):
        assert_mirrors(schema.SetOut, {k: v for k, v in data.items() if k != "production"}, "missing")
    with pytest.raises(pydantic.ValidationError):
        assert_mirrors(schema.SetOut, {**data, "dimension": "4"}, "retyped")
    nested = QueryResult("/a", (), False, False, nearest=(Neighbor("/b", 0.5),)).to_dict()
    nested["nearest"][0]["distance"] = 0.5
    with pytest.raises(AssertionError, match="nearest"):
        assert_mirrors(schema.QueryResultOut, nested, "nested")


# ---- requests: the wire body is the request object's, with its defaults ---------------------------------------------


def test_select_in_defaults_are_the_request_objects():
    defaults = schema.SelectIn().model_dump()
    fields = {f.name: f.default for f in dataclasses.fields(SelectRequest)}
    assert set(defaults) == set(fields) - {"set_id"}
    assert {k: v for k, v in defaults.items() if k != "thresholds"} == {
        k: fields[k] for k in defaults if k != "thresholds"
    }
    assert defaults["thresholds"] is None and fields["thresholds"] == Thresholds()


@given(
    n=st.integers(1, MAX_PICKS),
    diversity=st.floats(0.0, 1.0),
    since=st.none() | st.floats(0, 2e9),
    rescore=st.booleans(),
    k=st.integers(1, 1000),
)
def test_a_select_request_survives_the_wire(n, diversity, since, rescore, k):
    request = SelectRequest("s", n, diversity, since, rescore, Thresholds(k=k))
    body = schema.SelectIn.model_validate(request.to_wire())
    again = SelectRequest("s", body.n, body.diversity, body.since, body.rescore, Thresholds.coerce(body.thresholds))
    assert again == request
