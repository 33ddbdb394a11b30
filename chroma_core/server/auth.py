"""Who is asking: API keys, the application each key belongs to, and that application's engine.

Keys are compared in constant time and never logged. Authentication looks at the request's headers and client
address only, never at its body, so it can run before a body is read. No FastAPI here: the routes adapt it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chroma_core.engine import Engine, SQLiteStore
from chroma_core.errors import ConfigError
from chroma_core.server.wire import APPLICATION_HEADER, KEY_HEADER, ApiError, is_loopback

__all__ = ["DEFAULT_APPLICATION", "Keys", "Tenants", "authenticate", "is_loopback"]

#: The one application a server without keys serves (its loopback clients).
DEFAULT_APPLICATION = "default"


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests hides even the length of the configured keys.
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class Keys:
    """Configured keys as (digest, application_id) pairs; the keys themselves are not kept."""

    entries: tuple[tuple[bytes, str], ...]

    def __repr__(self) -> str:
        return f"Keys({len(self.entries)} keys for {len({a for _, a in self.entries})} applications)"

    @classmethod
    def from_mapping(cls, mapping: dict[str, str]) -> Keys:
        entries = []
        for key, app in mapping.items():
            if not isinstance(key, str) or len(key) < 8:
                raise ConfigError("every API key must be a string of at least 8 characters.")
            if not isinstance(app, str) or not app:
                raise ConfigError("every API key must map to a non-empty application_id string.")
            entries.append((_digest(key), app))
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keys:
        """Read ``{"<api key>": "<application_id>", ...}`` from a JSON file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"keys file {os.fspath(path)!r} does not exist.") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"keys file {os.fspath(path)!r} is not readable JSON ({type(exc).__name__}).") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(f'keys file {os.fspath(path)!r} must be a JSON object {{"<key>": "<application_id>"}}.')
        return cls.from_mapping(data)

    def application_for(self, presented: str) -> str | None:
        """The key's application, or None. Every entry is compared, so timing says nothing about which matched."""
        digest = _digest(presented)
        found = None
        for known, app in self.entries:
            if hmac.compare_digest(known, digest):
                found = app
        return found


def authenticate(keys: Keys | None, headers: Mapping[str, str], client_host: str | None) -> str:
    """The application a request acts for, from its headers (lower-case names) and client address alone.

    Without ``keys``, only loopback clients are served, as :data:`DEFAULT_APPLICATION`. Raises :class:`ApiError`
    ``unauthorized`` (no key, or an unknown one) or ``forbidden`` (another application's key, or a non-loopback
    client of a keyless server).
    """
    if keys is None:
        if not is_loopback(client_host):
            raise ApiError(
                "forbidden",
                "this server has no API keys configured and serves only loopback "
                "clients; start it with --keys-file to accept others.",
            )
        return DEFAULT_APPLICATION
    auth = headers.get("authorization", "")
    presented = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get(KEY_HEADER.lower(), "")
    if not presented:
        raise ApiError("unauthorized", f"missing API key: send 'Authorization: Bearer <key>' or '{KEY_HEADER}'.")
    application = keys.application_for(presented)
    if application is None:
        raise ApiError("unauthorized", "invalid API key; check api_key in chroma.json or CHROMA_API_KEY.")
    claimed = headers.get(APPLICATION_HEADER.lower())
    if claimed and claimed != application:
        raise ApiError(
            "forbidden",
            f"this API key belongs to another application than application_id {claimed!r}; fix application_id "
            "or the key.",
        )
    return application


class Tenants:
    """One engine (its own store and vector files) per application: applications share nothing on disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def engine(self, application_id: str) -> Engine:
        """The application's engine, opened on its first request."""
        with self._lock:
            engine = self._engines.get(application_id)
            if engine is None:
                # A digest, not the id itself, names the directory: ids are the operator's free text.
                name = hashlib.sha256(application_id.encode("utf-8")).hexdigest()[:32]
                engine = self._engines[application_id] = Engine(SQLiteStore(self.root / "applications" / name))
            return engine

    def close(self) -> None:
        """Close every open engine (at shutdown); a later request opens its engine again."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
