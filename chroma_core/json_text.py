"""JSON text that never fails on what model code returns, and fast parsing when orjson is installed.

``inferences`` and labels come from user code: numpy and torch scalars and arrays, sets, dataclasses, NaN scores.
:func:`json_text` writes all of them (NaN as null; anything else as its ``str()``, with a warning once per type), so
that ``save()`` never fails on values that ``log()`` already accepted.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chroma_core.logs import logger

__all__ = ["json_text", "loads", "to_jsonable"]


loads: Callable[[bytes | str], Any]
try:  # 3-4x faster parsing of record lines when present (the [server] extra installs it)
    from orjson import loads
except ImportError:  # pragma: no cover - exercised on a client-only install
    loads = json.loads

_warned_types: set[type] = set()


def to_jsonable(obj: Any) -> Any:
    """``json`` fallback for numpy/torch scalars and arrays, sets, dataclasses and bytes; else ``str(obj)``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if type(obj) not in _warned_types:
        _warned_types.add(type(obj))
        logger.warning("inferences hold a %s, which is not JSON; stored as its str()", type(obj).__name__)
    return str(obj)


_dumps = json.JSONEncoder(default=to_jsonable, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
_dumps_nan = json.JSONEncoder(default=to_jsonable, ensure_ascii=False, separators=(",", ":")).encode

_fast_dumps: Callable[[Any], str] | None
try:  # 3-5x faster; it writes NaN as null by itself, and what it cannot write goes the slow way below
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _fast_dumps(value: Any) -> str:
        return orjson.dumps(value, default=to_jsonable, option=_OPTIONS).decode("utf-8")

except ImportError:  # pragma: no cover - a client-only install
    _fast_dumps = None


def json_text(value: Any) -> str:
    """Compact JSON text of ``value`` that never fails: see :func:`to_jsonable`; NaN becomes null."""
    if value is None:
        return "null"
    if _fast_dumps is not None:
        try:
            return _fast_dumps(value)
        except TypeError:  # e.g. an int beyond 64 bits
            pass
    try:
        return _dumps(value)  # type: ignore[no-any-return]
    except ValueError:
        # NaN in inferences (e.g. a score) is not JSON; write it as null rather than lose the record.
        return _dumps(json.loads(_dumps_nan(value), parse_constant=lambda _: None))  # type: ignore[no-any-return]
