"""A set is named the same way everywhere: its dict, its full id, or a unique id prefix of 8+ hex digits."""

from __future__ import annotations

import json

import pytest

import chroma
from chroma_core.cli import main
from chroma_core.embedding_set import parse_set_ref
from chroma_core.errors import AmbiguousSetError, InvalidEmbeddingSetError, UnknownEmbeddingSetError
from chroma_core.transport import transport_for
from tests.conftest import SET, clusters

SET_ID = chroma.embedding_set_id(SET)


@pytest.fixture
def trained():
    x, labels, _ = clusters(n_per=30, dim=8, k=3)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x, label=labels)
    return x


@pytest.mark.parametrize("ref", [SET, SET_ID, SET_ID[:8], SET_ID[:8].upper(), json.dumps(SET)])
def test_query_session_and_select_take_a_dict_an_id_or_a_prefix(trained, ref):
    with chroma.QuerySession(embedding_set=ref) as q:
        result = q.log(input_uri="/q", embedding=trained[0] + 0.5)
        assert result.set_id == SET_ID
        assert q.embedding_set is not None and dict(q.embedding_set.key) == SET
    assert chroma.select(ref, n=1).set_id == SET_ID


def test_training_session_by_id_adds_to_an_existing_set(trained):
    with chroma.TrainingSession(embedding_set=SET_ID[:10]) as s:
        s.log(input_uri="/more", embedding=trained[1])
    assert transport_for(chroma.load_config()).get_set(SET_ID).training == len(trained) + 1


def test_refs_that_name_nothing_or_too_much(trained):
    with pytest.raises(InvalidEmbeddingSetError, match="8 hex digits"):
        parse_set_ref("abc")
    with pytest.raises(InvalidEmbeddingSetError, match="does not name"):
        chroma.QuerySession(embedding_set="not-an-id")
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.QuerySession(embedding_set="0" * 8).log(input_uri="/q", embedding=trained[0])


def test_a_prefix_that_names_two_sets_is_refused():
    # Two real sha1 ids never share 8 digits in practice, so the stored list is given: the rule is what is tested.
    transport = transport_for(chroma.load_config())
    transport.list_sets = lambda: [  # type: ignore[method-assign]
        chroma.SetInfo("ab" * 20, {"model": "a"}, 8, 1, 0),
        chroma.SetInfo("ab" * 19 + "cd", {"model": "b"}, 8, 1, 0),
    ]
    with pytest.raises(AmbiguousSetError, match="names 2 embedding sets"):
        transport.find_set("abababab")
    assert transport.find_set("ab" * 19 + "c").embedding_set == {"model": "b"}


def test_the_cli_takes_one_spelling_and_short_ids(trained, capsys):
    vector = json.dumps((trained[0] + 0.5).tolist())
    for flag in ("--set", "--embedding-set", "-embedding_set"):
        assert main(["should-upload", flag, SET_ID[:8], vector]) == 0
        assert json.loads(capsys.readouterr().out)["set_id"] == SET_ID
    chroma.QuerySession(SET).log(input_uri="/prod", embedding=trained[0] + 0.5)
    from chroma_core.delivery import shutdown

    shutdown(timeout=10)
    assert main(["select", "--set", SET_ID[:12], "-n", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["set_id"] == SET_ID
    assert main(["select", "--set", "zz", "-n", "1"]) == 1
    assert "8 hex digits" in capsys.readouterr().err
