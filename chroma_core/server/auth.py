"""API keys: each key maps to one application; keys are compared in constant time and never logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from chroma_core.errors import ConfigError
from chroma_core.server.wire import is_loopback  # re-exported: the server's callers import it from here

__all__ = ["Keys", "is_loopback"]


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
