"""``bufferlocal`` file templates: ``/tmp/chroma-$model-$layer-$timestamp.jsonl``.

Placeholders are ``$name`` or ``${name}``: any key of the embedding set, plus ``$timestamp`` (UTC, as in
``2022-10-18T16:34:28.614077``), ``$set_id``, ``$mode`` and ``$batch_id``. Substituted values must be plain file-name
parts: a value holding a path separator, a NUL or ``..`` is refused, so a set value can never move the file out of
the directory the template names.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path

from chroma_core.errors import InvalidPathError

__all__ = ["check_template", "render_template"]

_SPECIAL = ("timestamp", "set_id", "mode", "batch_id")


def _names(template: str) -> list[str]:
    names = []
    for match in string.Template.pattern.finditer(template):
        if match.group("invalid") is not None:
            raise InvalidPathError(f"bufferlocal file {template!r} has a stray '$'; write '$$' for a literal dollar.")
        name = match.group("named") or match.group("braced")
        if name:
            names.append(name)
    return names


def check_template(template: str, keys: Mapping[str, object] | None) -> None:
    """Fail early on unknown placeholders (when the set is known) and on unsafe set values."""
    if not isinstance(template, str) or not template:
        raise InvalidPathError("bufferlocal needs file='...', e.g. '/tmp/chroma-$model-$layer-$timestamp.jsonl'.")
    if not re.search(r"\.jsonl(\.gz)?$", template):
        raise InvalidPathError(f"bufferlocal file {template!r} must end in .jsonl or .jsonl.gz.")
    names = _names(template)
    if keys is not None:
        unknown = [n for n in names if n not in keys and n not in _SPECIAL]
        if unknown:
            raise InvalidPathError(
                f"bufferlocal file {template!r} uses ${unknown[0]}, which is not a key of the embedding set "
                f"({', '.join(sorted(map(str, keys)))}) nor one of {', '.join('$' + s for s in _SPECIAL)}."
            )
        for name in names:
            if name in keys:
                _safe_part(name, keys[name])


def _safe_part(name: str, value: object) -> str:
    text = str(value)
    if not text or "/" in text or "\\" in text or "\0" in text or ".." in text or text in (".", "~"):
        raise InvalidPathError(
            f"embedding_set[{name!r}] = {text!r} cannot go into a file name: it is empty or holds a path "
            "separator or '..', which could write outside the chosen directory. Use another placeholder, "
            "or a value without '/', '\\' and '..'."
        )
    return text


def render_template(template: str, values: Mapping[str, object]) -> Path:
    check_template(template, values)
    names = set(_names(template))
    safe = {n: _safe_part(n, values[n]) for n in names}
    rendered = string.Template(template).substitute(safe)
    path = Path(os.path.expanduser(rendered))
    # Belt and braces: the result must sit under the template's own fixed directory.
    fixed = Path(os.path.expanduser(template.split("$", 1)[0])).parent
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(fixed)]) != os.path.abspath(fixed):
        raise InvalidPathError(f"bufferlocal file {rendered!r} would be written outside {str(fixed)!r}.")
    return path
