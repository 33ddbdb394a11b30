"""Selections, batches of answers and a set's records as DataFrames; reprs a person can read."""

from __future__ import annotations

import numpy as np
import pytest

import chroma
from tests.conftest import SET, clusters

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")


@pytest.fixture
def answered():
    x, labels, _ = clusters(n_per=40, dim=8, k=3)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x, label=labels)
    rng = np.random.default_rng(3)
    queries = np.concatenate([x[:5] + 0.001, 4 * rng.normal(size=(10, 8))]).astype(np.float32)
    with chroma.QuerySession(SET) as q:
        results = q.log(
            input_uri=[f"/q/{i}" for i in range(len(queries))],
            embedding=queries,
            preview=[f"query {i}" for i in range(len(queries))],
        )
    return results


def test_a_batch_of_answers_is_a_list_and_a_table(answered):
    assert isinstance(answered, list) and len(answered) == 15 and isinstance(answered[0], chroma.QueryResult)
    frame = answered.to_pandas()
    assert list(frame["input_uri"]) == [f"/q/{i}" for i in range(15)]
    assert frame["not_useful"].iloc[:5].all() and frame["training_recommended"].iloc[5:].all()
    assert {"novelty", "nearest_similarity", "recommendations", "nearest_input_uri"} <= set(frame.columns)
    assert answered.to_arrow().num_rows == 15
    assert len(repr(answered)) < 300 and "15 answers" in repr(answered)
    assert repr(answered[0]).startswith("QueryResult('/q/0', not_useful")


def test_a_selection_is_a_table_with_a_short_repr(answered):
    selection = chroma.select(SET, n=5)
    frame = selection.to_pandas()
    assert list(frame["rank"]) == list(range(1, len(selection.picks) + 1))
    assert list(frame["preview"]) == [p.preview for p in selection.picks]
    assert selection.to_arrow().column("input_uri").to_pylist() == selection.input_uris
    assert len(repr(selection)) < 400 and f"{len(selection.picks)} picks" in repr(selection)
    assert repr(selection.picks[0]).startswith("Pick(#1 /q/")


def test_a_sets_records_as_a_table_with_their_embeddings(answered):
    table = chroma.records(SET)  # production, by default
    assert len(table) == 15 and repr(table).endswith("mode='production', records=15)")
    frame = table.to_pandas()
    assert list(frame["preview"]) == [f"query {i}" for i in range(15)]
    np.testing.assert_array_equal(np.stack(frame["embedding"]), table.vectors)
    arrow = table.to_arrow()
    assert arrow.schema.field("embedding").type == pa.list_(pa.float32(), 8)
    training = chroma.records(SET, mode="training", limit=7)
    assert len(training) == 7 and training.to_pandas()["label"].notna().all()
    with pytest.raises(chroma.ChromaError, match="mode must be"):
        chroma.records(SET, mode="prod")
