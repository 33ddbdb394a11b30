"""An embedding set (one layer of one model version) and its content-derived id.

The id is the SHA-1 hex digest of the set's canonical JSON: keys sorted, no whitespace, UTF-8, strings in Unicode
NFC, integral floats written as integers (so ``{"v": 1}`` and ``{"v": 1.0}``, which compare equal in Python, name
the same set). The same dict gives the same id on every machine and in every process, with no lookup.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from chroma_core.errors import InvalidEmbeddingSetError

__all__ = [
    "MIN_PREFIX",
    "EmbeddingSet",
    "Scalar",
    "SetRef",
    "canonical_json",
    "embedding_set_id",
    "is_full_id",
    "parse_set_ref",
    "set_id_of",
]

Scalar = Union[str, int, float, bool, None]


def _canonical_value(key: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEmbeddingSetError(
                f"embedding_set[{key!r}] is {value!r}; values must be finite. Use a string such as 'nan' instead."
            )
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise InvalidEmbeddingSetError(
        f"embedding_set[{key!r}] is a {type(value).__name__}; values must be scalars (str, int, float, bool, "
        "None). Flatten nested values into their own keys, e.g. {'model': 'bert', 'layer': 'context'}."
    )


def _canonical_dict(raw: object) -> dict[str, Scalar]:
    if not isinstance(raw, Mapping):
        raise InvalidEmbeddingSetError(
            f"embedding_set must be a dict such as {{'model': 'bert', 'model_version': '3', 'layer': 'context'}}, "
            f"not {type(raw).__name__}."
        )
    if not raw:
        raise InvalidEmbeddingSetError(
            "embedding_set is empty; name at least the model, e.g. {'model': 'bert', 'model_version': '3', "
            "'layer': 'context'}."
        )
    out: dict[str, Scalar] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise InvalidEmbeddingSetError(f"embedding_set keys must be non-empty strings, got {key!r}.")
        nkey = unicodedata.normalize("NFC", key)
        if nkey in out:
            raise InvalidEmbeddingSetError(f"embedding_set has key {key!r} twice (after Unicode normalisation).")
        out[nkey] = _canonical_value(key, value)
    return out


def canonical_json(raw: Mapping[str, object]) -> str:
    """The canonical JSON text an id is computed from."""
    return json.dumps(_canonical_dict(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def embedding_set_id(raw: Mapping[str, object]) -> str:
    """SHA-1 hex id of an embedding set dict.

    >>> embedding_set_id({"model": "m", "layer": "l"}) == embedding_set_id({"layer": "l", "model": "m"})
    True
    """
    return hashlib.sha1(canonical_json(raw).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EmbeddingSet:
    """A validated embedding set: the raw dict as given, and its id."""

    key: Mapping[str, Scalar]
    id: str

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> EmbeddingSet:
        canonical = _canonical_dict(raw)
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(key=dict(raw), id=hashlib.sha1(text.encode("utf-8")).hexdigest())  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: EmbeddingSet | Mapping[str, object]) -> EmbeddingSet:
        return value if isinstance(value, EmbeddingSet) else cls.from_dict(value)


#: How callers name a set: its dict, an :class:`EmbeddingSet`, its id, or a unique prefix of its id (8+ hex).
SetRef = Union[EmbeddingSet, Mapping[str, object], str]

#: The shortest id prefix accepted for a set: 8 hex digits (as ``chroma sets`` and the demo print them).
MIN_PREFIX = 8
_ID_LENGTH = 40
_HEX = frozenset("0123456789abcdef")


def parse_set_ref(ref: SetRef) -> EmbeddingSet | str:
    """An :class:`EmbeddingSet` for a dict; for a string, the id or id prefix it is (lower-cased), checked.

    A JSON object in a string (as a command line passes it) is read as the set's dict.
    """
    if isinstance(ref, EmbeddingSet):
        return ref
    if isinstance(ref, str):
        text = ref.strip()
        if text.startswith("{"):
            try:
                raw = json.loads(text)
            except ValueError as exc:
                raise InvalidEmbeddingSetError(f"embedding set {ref!r} looks like JSON but is not ({exc}).") from None
            return EmbeddingSet.from_dict(raw)
        text = text.lower()
        if not MIN_PREFIX <= len(text) <= _ID_LENGTH or not set(text) <= _HEX:
            raise InvalidEmbeddingSetError(
                f"{ref!r} does not name an embedding set: give the set's dict (e.g. {{'model': 'bert', 'layer': "
                f"'context'}}), its 40-character id, or a unique prefix of at least {MIN_PREFIX} hex digits "
                "(see `python -m chroma sets`)."
            )
        return text
    return EmbeddingSet.from_dict(ref)


def set_id_of(ref: SetRef) -> str:
    """The id (or, for a string, the id prefix) of a set named by its dict, an :class:`EmbeddingSet` or a string."""
    parsed = parse_set_ref(ref)
    return parsed if isinstance(parsed, str) else parsed.id


def is_full_id(text: str) -> bool:
    return len(text) == _ID_LENGTH
