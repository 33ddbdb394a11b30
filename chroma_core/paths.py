"""``bufferlocal`` file templates: ``/tmp/chroma-$model-$layer-$timestamp.jsonl``.

Placeholders are ``$name`` or ``${name}``: any key of the embedding set, plus ``$timestamp`` (UTC, as in
``2022-10-18T16:34:28.614077``), ``$set_id``, ``$mode`` and ``$batch_id``.

A set's value goes into the name as a *slug*, so that any value works (a hub model such as
``sentence-transformers/all-MiniLM-L6-v2`` included) and none can move the file out of the template's directory:
every run of characters other than letters, digits and ``. _ + = -`` becomes one ``_`` (so ``org/name`` is
``org_name``), a leading ``.`` becomes ``_`` (``..`` is never a path part), an empty value is ``_``, and a value
longer than 64 characters is cut to 55 and given ``-`` and 8 hex digits of its SHA-1 (so two long values stay
apart). A file name that would still be longer than the file system allows (255 bytes) is refused, naming the
template.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from chroma_core.errors import InvalidPathError

__all__ = ["check_template", "render_template", "slug"]

_SPECIAL = ("timestamp", "set_id", "mode", "batch_id")
_SLUG_MAX = 64
_NAME_MAX = 255  # bytes in one file name on the usual file systems (ext4, xfs, apfs, ntfs)
_UNSAFE = re.compile(r"[^\w.+=-]+")  # \w: letters and digits of any script, and '_'


def slug(value: object) -> str:
    """``value`` as a safe part of a file name (see the module docstring).

    >>> slug("sentence-transformers/all-MiniLM-L6-v2"), slug(".."), slug("")
    ('sentence-transformers_all-MiniLM-L6-v2', '_.', '_')
    """
    text = unicodedata.normalize("NFC", str(value))
    out = _UNSAFE.sub("_", text)
    if out.startswith("."):
        out = "_" + out[1:]
    if len(out) > _SLUG_MAX:
        out = out[:55] + "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return out or "_"


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
    """Fail early on unknown placeholders and on file names too long (when the set is known)."""
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
        _check_length(template, {n: keys[n] for n in names if n in keys})


def _check_length(template: str, values: Mapping[str, object]) -> None:
    """Refuse a template whose file name, with these values (and the longest special ones), is too long."""
    widest = {"timestamp": "0" * 26, "set_id": "0" * 40, "mode": "production", "batch_id": "0" * 32}
    sample = {n: slug(values[n]) if n in values else widest.get(n, "") for n in set(_names(template))}
    name = os.path.basename(string.Template(template).safe_substitute(sample))
    if len(name.encode("utf-8")) > _NAME_MAX:
        raise InvalidPathError(
            f"bufferlocal file {template!r} makes file names of {len(name.encode('utf-8'))} bytes; file systems "
            f"allow {_NAME_MAX}. Use fewer or shorter placeholders (long set values are cut to {_SLUG_MAX} characters)."
        )


def render_template(template: str, values: Mapping[str, object]) -> Path:
    check_template(template, values)
    names = set(_names(template))
    safe = {n: slug(values[n]) for n in names}
    rendered = string.Template(template).substitute(safe)
    path = Path(os.path.expanduser(rendered))
    # Belt and braces: the result must sit under the template's own fixed directory.
    fixed = Path(os.path.expanduser(template.split("$", 1)[0])).parent
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(fixed)]) != os.path.abspath(fixed):
        raise InvalidPathError(f"bufferlocal file {rendered!r} would be written outside {str(fixed)!r}.")
    return path
