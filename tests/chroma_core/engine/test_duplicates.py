from __future__ import annotations

import numpy as np
import pytest

import chroma
from chroma_core.cli import main
from chroma_core.errors import ConfigError, DimensionMismatchError, InvalidEmbeddingError, UnknownEmbeddingSetError
from chroma_core.types import DuplicateReport, DuplicatesRequest
from tests.conftest import clusters

TRAIN = {"model": "m", "model_version": "1", "layer": "x", "split": "train"}
TEST = {"model": "m", "model_version": "1", "layer": "x", "split": "test"}


def _log(es, x, prefix, training=True):
    session = chroma.TrainingSession(embedding_set=es) if training else chroma.QuerySession(embedding_set=es)
    with session as s:
        s.log(input_uri=[f"{prefix}{i}" for i in range(len(x))], embedding=x)


@pytest.fixture
def data():
    x, _, _ = clusters(n_per=60, dim=16, seed=3)
    rng = np.random.default_rng(4)
    copies = x[[5, 5, 40]] + 1e-4 * rng.normal(size=(3, 16)).astype(np.float32)  # 5 three times, 40 twice
    train = np.concatenate([x, copies])
    _log(TRAIN, train, "/t/")
    return x, train


def test_groups_production_copies_and_leaks(data):
    x, train = data
    _log(TRAIN, np.concatenate([x[[7]] * 1.0001, x[[9]] + 3.0]), "/p/", training=False)
    _log(TEST, np.concatenate([x[[11, 12]] * 0.999, x[:3] + 2.0]), "/test/")
    report = chroma.duplicates(TRAIN, against=TEST)
    assert isinstance(report, DuplicateReport) and 0 < report.threshold < 0.2
    groups = sorted(sorted(g.input_uris) for g in report.groups)
    n = len(x)
    assert groups == [sorted(["/t/5", f"/t/{n}", f"/t/{n + 1}"]), sorted(["/t/40", f"/t/{n + 2}"])]
    assert report.duplicated_training == 3
    assert [(c.input_uri, c.training_uri) for c in report.production] == [("/p/0", "/t/7")]
    assert sorted((c.input_uri, c.training_uri) for c in report.leaks) == [("/test/0", "/t/11"), ("/test/1", "/t/12")]
    assert DuplicateReport.from_dict(report.to_dict()) == report
    assert "3 leaks" not in repr(report) and "2 leaks" in repr(report)


def test_threshold_override_and_no_production(data):
    x, _ = data
    _log(TRAIN, x[[7]] * 1.0001, "/p/", training=False)
    none = chroma.duplicates(TRAIN, threshold=0.0, production=False)
    assert none.threshold == 0.0 and none.production == () and all(g.max_distance == 0.0 for g in none.groups)
    wide = chroma.duplicates(TRAIN, threshold=2.0)
    # Pairs are looked for among each record's 32 nearest: at the widest threshold, each of the 5 clusters is a group.
    assert len(wide.groups) == 5 and sum(len(g.rows) for g in wide.groups) == len(data[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threshold": -0.1}, ConfigError, "cosine distance from 0 to 2"),
        ({"threshold": float("nan")}, ConfigError, "cosine distance from 0 to 2"),
    ],
)
def test_bad_requests_say_what_is_wrong(kwargs, error, message):
    with pytest.raises(error, match=message):
        DuplicatesRequest("a" * 40, **kwargs)


def test_against_itself_an_unknown_set_or_another_dimension(data):
    with pytest.raises(ConfigError, match="the set itself"):
        chroma.duplicates(TRAIN, against=TRAIN)
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.duplicates(TRAIN, against={"model": "nope"})
    other = {"model": "other"}
    _log(other, np.ones((3, 8), dtype=np.float32), "/o/")
    with pytest.raises(DimensionMismatchError, match="8-dimensional"):
        chroma.duplicates(TRAIN, against=other)


def test_cli(data, capsys):
    _log(TEST, data[0][[11]] * 0.999, "/test/")
    assert (
        main(["duplicates", "--set", chroma.embedding_set_id(TRAIN), "--against", chroma.embedding_set_id(TEST)]) == 0
    )
    out = capsys.readouterr().out
    assert "2 groups of training records (3 removable)" in out and "/test/0  copies  /t/11" in out
    assert main(["duplicates", "--set", chroma.embedding_set_id(TRAIN), "--json", "--no-production"]) == 0
    assert len(DuplicateReport.from_dict(__import__("json").loads(capsys.readouterr().out)).groups) == 2


def test_one_training_record_has_no_groups():
    _log({"model": "one"}, np.ones((1, 4), dtype=np.float32), "/t/")
    report = chroma.duplicates({"model": "one"})
    assert report.groups == () and report.threshold == 0.0


def test_copies_of_one_input_at_any_scale_are_one_group_and_tagged_as_copies():
    # Positive multiples of one embedding, down to ones whose squares underflow float32 and up to ones whose squares
    # overflow it: all accepted when logged, all one group at the default threshold and at 0, and a query that
    # copies them is tagged a near duplicate. An all-zero row is refused and what was logged before it is kept.
    es = {"model": "scaled"}
    v = np.array([0.6, -0.8, 0.0, 0.0], np.float32)
    x = np.stack([v * s for s in (1e-30, 1e-20, 1e-3, 1.0, 7.0, 1e20, 1e30)]).astype(np.float32)
    _log(es, x, "/t/")
    with pytest.raises(InvalidEmbeddingError, match="all zeros"):
        _log(es, np.zeros((1, 4), np.float32), "/z/")
    for threshold in (None, 0.0):
        (group,) = chroma.duplicates(es, threshold=threshold).groups
        assert group.rows == tuple(range(len(x))) and group.max_distance == 0.0
    result = chroma.QuerySession(es, thresholds={"min_training": 2}).log(input_uri="/q", embedding=v * 1e-25)
    assert "near_duplicate" in result.recommendations and result.scores["novelty"] < 1e-5
