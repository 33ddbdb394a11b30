from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chroma_core.embedding_set import EmbeddingSet, canonical_json, embedding_set_id
from chroma_core.errors import InvalidEmbeddingSetError

scalars = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
set_dicts = st.dictionaries(st.text(min_size=1, max_size=12), scalars, min_size=1, max_size=6)


@given(set_dicts, st.randoms())
def test_key_order_never_matters(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert embedding_set_id(dict(items)) == embedding_set_id(d)


@given(set_dicts)
def test_canonical_json_is_compact_sorted_json(d):
    text = canonical_json(d)
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)
    assert json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == text
    assert len(embedding_set_id(d)) == 40


def test_id_is_stable_across_processes():
    d = {"model": "user-exp-abc", "model_version": "123", "layer": "context", "é": "caf\u0065\u0301", "v": 1.0}
    code = (
        "import json,sys; from chroma_core.embedding_set import embedding_set_id; "
        "print(embedding_set_id(json.loads(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(d)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert out.stdout.strip() == embedding_set_id(d)


def test_known_vector():
    # Pinned: changing the canonical form would orphan every stored set.
    assert (
        canonical_json({"model": "m", "layer": "l", "model_version": "1"})
        == '{"layer":"l","model":"m","model_version":"1"}'
    )
    assert embedding_set_id({"model": "m", "layer": "l", "model_version": "1"}) == (
        __import__("hashlib").sha1(b'{"layer":"l","model":"m","model_version":"1"}').hexdigest()
    )


def test_nfc_and_integral_floats_name_the_same_set():
    assert embedding_set_id({"m": "cafe\u0301"}) == embedding_set_id({"m": "caf\u00e9"})
    assert embedding_set_id({"v": 1}) == embedding_set_id({"v": 1.0})
    assert embedding_set_id({"v": True}) != embedding_set_id({"v": 1})
    assert embedding_set_id({"v": "1"}) != embedding_set_id({"v": 1})


def test_raw_dict_is_kept():
    es = EmbeddingSet.from_dict({"model": "m", "v": 1.0})
    assert es.key == {"model": "m", "v": 1.0}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({}, "empty"),
        ({"model": {"name": "x"}}, "scalars"),
        ({"model": ["a"]}, "scalars"),
        ({"v": float("nan")}, "finite"),
        ({1: "x"}, "non-empty strings"),
        ({"": "x"}, "non-empty strings"),
        ("model-a", "must be a dict"),
        (None, "must be a dict"),
    ],
)
def test_bad_sets_are_refused_with_a_fix(bad, match):
    with pytest.raises(InvalidEmbeddingSetError, match=match):
        EmbeddingSet.from_dict(bad)
