"""A string that never shows itself in a repr, a log line or an error message."""

from __future__ import annotations

__all__ = ["Secret", "redact_url"]


class Secret:
    """Holds a secret such as an API key; ``repr`` and ``str`` show only a mask.

    >>> key = Secret("secret-456")
    >>> key
    Secret('**********')
    >>> key.get_secret_value()
    'secret-456'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


def redact_url(url: str) -> str:
    """``url`` with the password of its user info masked: ``http://me:***@proxy:3128``; the one place URLs with
    credentials are made fit for a repr, a log line or an error message."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    masked = f"{user}:***" if ":" in userinfo else "***"
    return f"{scheme}{sep}{masked}@{host}{slash}{path}"
