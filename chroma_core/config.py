"""Where Chroma's settings come from, in one precedence order.

From lowest to highest priority:

1. the field defaults of :class:`Config` (the only place defaults live);
2. the ``chroma.json`` file: ``chroma_config=PATH``, else ``$CHROMA_CONFIG``, else ``./chroma.json`` if it exists
   (a file that is *named* but missing is an error; the implicit ``./chroma.json`` is optional). When
   ``chroma_json`` is given and no file is named, no file is read;
3. ``chroma_json``, the contents of a ``chroma.json`` as a string;
4. environment variables ``CHROMA_API_KEY``, ``CHROMA_APPLICATION_ID``, ``CHROMA_URL``, ``CHROMA_HTTP_PROXY``,
   ``CHROMA_PERSIST_DIRECTORY``, ``CHROMA_STORE_URL`` (an empty variable counts as unset);
5. keyword arguments (``api_key=...``, ``chroma_server_url=...``/``chroma_url=...``, ...); ``None`` or ``""``
   means "not given".

No ``chroma_url`` means the embedded engine, persisting under ``persist_directory``, or in the PostgreSQL
database of ``store_url`` (``postgresql://user:password@host/db``) when one is given. A relative
``persist_directory`` read from a file is taken relative to that file's directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from chroma_core.errors import ConfigError
from chroma_core.secret import Secret, redact_url

__all__ = ["Config", "ConfigOptions", "check_store_url", "load_config"]

_ENV = {
    "api_key": "CHROMA_API_KEY",
    "application_id": "CHROMA_APPLICATION_ID",
    "chroma_url": "CHROMA_URL",
    "http_proxy": "CHROMA_HTTP_PROXY",
    "persist_directory": "CHROMA_PERSIST_DIRECTORY",
    "store_url": "CHROMA_STORE_URL",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Resolved settings. Build one with :func:`load_config`; the defaults below are the only defaults."""

    api_key: Secret | None = None
    application_id: str | None = None
    chroma_url: str | None = None
    http_proxy: str | None = None
    persist_directory: str = ".chroma"
    #: The embedded engine's database (``postgresql://...``); None keeps data in SQLite under persist_directory.
    store_url: str | None = None

    @property
    def embedded(self) -> bool:
        """True when no service URL is set: sessions use the in-process engine."""
        return not self.chroma_url

    def __repr__(self) -> str:
        # Every value as it is, except what could hold a credential: the key is masked, URLs lose their passwords.
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, str) and "://" in value:
                value = redact_url(value)
            shown.append(f"{field.name}={value!r}")
        return f"Config({', '.join(shown)})"


_KEYS = tuple(f.name for f in dataclasses.fields(Config))


class ConfigOptions(TypedDict, total=False):
    """The configuration keywords that sessions, ``select``, ``export`` and the integrations take (see the module
    docstring for their precedence); typed so that an editor completes them."""

    chroma_config: str | os.PathLike[str] | None  # a chroma.json to read (default ./chroma.json)
    chroma_json: str | None  # chroma.json's contents as a string
    chroma_server_url: str | None  # the service's URL (the seed's name for chroma_url)
    chroma_url: str | None
    api_key: str | None
    application_id: str | None
    http_proxy: str | None
    persist_directory: str | os.PathLike[str] | None  # where the embedded engine keeps its data
    store_url: str | None  # the embedded engine's PostgreSQL database instead (postgresql://...)


def _parse_json(text: str, origin: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{origin} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            'Write it as a JSON object such as {"api_key": "...", "chroma_url": "http://host:8000/v1"}; '
            "JSON has no comments."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must hold a JSON object, not {type(data).__name__}.")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{origin} has unknown key(s) {', '.join(map(repr, unknown))}; known keys are {', '.join(_KEYS)}."
        )
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{origin}: {key!r} must be a string, not {type(value).__name__}.")
    return {k: v for k, v in data.items() if v not in (None, "")}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} does not exist. Create it, or leave chroma_config unset to use defaults."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    values = _parse_json(text, f"config file {str(path)!r}")
    persist = values.get("persist_directory")
    if persist and not os.path.isabs(persist):
        values["persist_directory"] = str(path.resolve().parent / persist)
    return values


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"chroma_url {redact_url(url)!r} is not an http(s) URL. Use e.g. 'http://127.0.0.1:8000', "
            "or leave it unset to use the embedded engine."
        )
    if "@" in parts.netloc:
        # requests would turn it into Basic auth, which replaces the Bearer key: every call would be a 401.
        raise ConfigError(
            f"chroma_url {redact_url(url)!r} holds a user name or password; remove it and give the key as "
            "api_key (in chroma.json) or CHROMA_API_KEY."
        )
    _check_port(url, "chroma_url")
    return url.rstrip("/")


def _check_proxy(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ConfigError(
            f"http_proxy {redact_url(url)!r} is not a URL; write it as 'http://[user:password@]host:port'."
        )
    _check_port(url, "http_proxy")
    return url


def check_store_url(url: str) -> str:
    """``url`` if it names a PostgreSQL database; a :class:`ConfigError` (password masked) otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not (parts.netloc or parts.query):
        raise ConfigError(
            f"store_url {redact_url(url)!r} is not a PostgreSQL URL; write it as "
            "'postgresql://user:password@host:5432/database', or leave it unset for the embedded SQLite store."
        )
    _check_port(url, "store_url")
    return url


def _check_port(url: str, name: str) -> None:
    try:
        _ = urlsplit(url).port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(
            f"{name} {redact_url(url)!r} has a port that is not a number from 0 to 65535; fix the port."
        ) from None


def load_config(
    *,
    chroma_config: str | os.PathLike[str] | None = None,
    chroma_json: str | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Resolve settings from file, string, environment and keyword arguments (see the module docstring).

    >>> load_config(chroma_json='{"application_id": "Customer-123"}', environ={}).application_id
    'Customer-123'
    """
    env = os.environ if environ is None else environ
    alias = overrides.pop("chroma_server_url", None)
    if alias not in (None, ""):
        if overrides.get("chroma_url") not in (None, ""):
            raise ConfigError("give chroma_url or chroma_server_url, not both.")
        overrides["chroma_url"] = alias
    unknown = sorted(set(overrides) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known settings are {', '.join(_KEYS)}.")

    values: dict[str, Any] = {}
    named = chroma_config or env.get("CHROMA_CONFIG") or None
    if named:
        values.update(_read_file(Path(named)))
    elif not chroma_json and Path("chroma.json").is_file():
        values.update(_read_file(Path("chroma.json")))
    if chroma_json:
        values.update(_parse_json(chroma_json, "chroma_json"))
    for key, var in _ENV.items():
        if env.get(var):
            values[key] = env[var]
    for key, value in overrides.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if value not in (None, ""):
            values[key] = value

    api_key = values.get("api_key")
    if isinstance(api_key, str):
        values["api_key"] = Secret(api_key)
    elif api_key is not None and not isinstance(api_key, Secret):
        raise ConfigError(f"api_key must be a string, not {type(api_key).__name__}.")
    if values.get("chroma_url"):
        values["chroma_url"] = _check_url(str(values["chroma_url"]))
    if values.get("http_proxy"):
        values["http_proxy"] = _check_proxy(str(values["http_proxy"]))
    if values.get("store_url"):
        values["store_url"] = check_store_url(str(values["store_url"]))
    return Config(**values)
