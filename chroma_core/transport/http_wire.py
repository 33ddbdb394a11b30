"""What the HTTP transport says and reads on the wire, apart from sending it: the API root, error bodies, part ids."""

from __future__ import annotations

import hashlib

import requests

from chroma_core.errors import ConfigError, TransportError, UnknownEmbeddingSetError
from chroma_core.server.wire import API_PREFIX, ERRORS

__all__ = ["part_id", "raise_for_status", "service_base"]


def service_base(chroma_url: str) -> str:
    """The API root for a ``chroma_url`` given with or without its version (``http://host:8000`` or ``.../v1``)."""
    base = chroma_url.rstrip("/")
    last = base.rsplit("/", 1)[-1]
    if last == API_PREFIX.strip("/"):
        return base
    if len(last) > 1 and last[0] == "v" and last[1:].isdigit() and "/" in base.split("://", 1)[-1]:
        raise ConfigError(
            f"chroma_url {base!r} asks for API {last}, but this client speaks {API_PREFIX.strip('/')}: give the "
            f"service's address without the version (e.g. {base[: -len(last) - 1]!r}) or with {API_PREFIX}."
        )
    return base + API_PREFIX


def part_id(batch_id: str, part: int, parts: int) -> str:
    """The batch id of one part of an upload sent in parts: the same for every retry, so nothing is stored twice."""
    if parts == 1:
        return batch_id
    name = f"{batch_id}.part{part:05d}"
    # Batch ids are at most 128 characters; a long one is shortened by a digest, still the same for every retry.
    return name if len(name) <= 128 else f"{hashlib.sha256(batch_id.encode()).hexdigest()[:40]}.part{part:05d}"


def raise_for_status(response: requests.Response) -> None:
    """Turn the service's JSON errors into our exceptions (the code says which); other failures into TransportError."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        raise TransportError(
            f"the Chroma service answered HTTP {response.status_code} to {response.request.method} "
            f"{response.url} without a Chroma error body; is chroma_url pointing at a Chroma service?"
        ) from None
    status, cls = ERRORS.get(code, (response.status_code, TransportError))
    if cls is UnknownEmbeddingSetError:
        set_id = response.url.rstrip("/").split("/sets/")[-1].split("/")[0]
        raise UnknownEmbeddingSetError(set_id)
    raise cls(f"{message} (HTTP {status}, {code})")
