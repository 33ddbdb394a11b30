from __future__ import annotations

import numpy as np

from chroma_core.engine.store import StoredRecord
from chroma_core.engine.strategies import balance_penalty, class_codes, class_of, typical
from chroma_core.types import Neighbor, QueryResult


def test_a_candidates_class_is_its_predicted_label_else_its_nearest_training_label():
    answer = QueryResult("/q", (), True, False, nearest=(Neighbor("/t/1", 0.3, "b"), Neighbor("/t/2", 0.2, "a")))
    record = StoredRecord(0, "r", "/q", None, None, 0.0)
    assert class_of(record, answer) == "b"
    assert class_of(record._replace(inferences={"label": "z", "score": 0.9}), answer) == "z"
    assert (
        class_of(record._replace(inferences=[{"label": "y", "score": 0.2}, {"label": "x", "score": 0.8}]), None) == "x"
    )
    assert class_of(record, None) is None
    assert class_of(record, QueryResult("/q", (), True, False)) is None


def test_class_codes_tell_values_apart_and_group_the_unlabelled():
    assert class_codes(["a", 1, "1", None, "a", None]).tolist() == [0, 1, 2, 3, 0, 3]
    assert class_codes([]).tolist() == []


def test_balance_penalty_is_the_share_over_an_equal_part_of_the_live_classes():
    classes = np.array([0, 0, 1, 1, 2])
    counts = np.array([2, 1, 5])
    alive = np.array([True, True, True, False, False])  # class 2 has no candidates left: no part for it
    # 8 picks so far, two live classes: an equal part is 1/2; class 2 is over by 5/8 - 1/2.
    assert balance_penalty(classes, alive, counts, 0.5).tolist() == [0.0, 0.0, 0.0, 0.0, 0.125]
    assert balance_penalty(classes, alive, np.array([6, 2, 0]), 0.75).tolist() == [0.75, 0.75, 0.0, 0.0, 0.0]
    # Full weight: strict round-robin, every class above the least-picked live one is out.
    assert balance_penalty(classes, alive, counts, 1.0).tolist() == [np.inf, np.inf, 0.0, 0.0, np.inf]
    assert balance_penalty(classes, alive, np.zeros(3, int), 0.5).tolist() == [0.0] * 5


def test_typical_interpolates_between_priority_and_priority_times_density():
    rel, dens = np.array([2.0, 1.0]), np.array([0.25, 1.0])
    assert typical(rel, dens, 0.0).tolist() == [2.0, 1.0]
    assert typical(rel, dens, 1.0).tolist() == [0.5, 1.0]
    assert typical(rel, dens, 0.5).tolist() == [1.25, 1.0]
