"""The part both sessions share: configuration, the transport, and naming the set."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from chroma_core.config import Config, ConfigOptions, load_config
from chroma_core.embedding_set import EmbeddingSet, SetRef, parse_set_ref
from chroma_core.errors import (
    InvalidEmbeddingSetError,
)
from chroma_core.records import Mode
from chroma_core.transport import Transport, transport_for

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SessionOptions", "SetLike"]


SetLike = SetRef


class SessionOptions(ConfigOptions, total=False):
    """What both sessions take besides their set: configuration keywords, or a ``Config`` / ``Transport`` made
    already (a transport handed in is the caller's to close)."""

    config: Config | None
    transport: Transport | None


class _Session:
    _mode: Mode
    #: How long, in seconds, one call to a service may take with its retries (None: the transport's default).
    _deadline: float | None = None

    def __init__(
        self,
        embedding_set: SetLike | None = None,
        *,
        config: Config | None = None,
        transport: Transport | None = None,
        **options: Unpack[ConfigOptions],
    ) -> None:
        config = config or load_config(**options)
        # Resolved now: the engine (and the query sessions' storage thread) may be opened after a chdir.
        self.config = dataclasses.replace(config, persist_directory=os.path.abspath(config.persist_directory))
        # A dict is a set at once; an id (or id prefix) is checked now and looked up on first use.
        self._set_ref = None if embedding_set is None else parse_set_ref(embedding_set)
        self._transport = transport
        self._owns_transport = transport is None

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = transport_for(self.config, deadline=self._deadline)
        return self._transport

    @property
    def embedding_set(self) -> EmbeddingSet | None:
        """The session's set (None if each ``log()`` names its own); an id given for it is looked up once."""
        ref = self._set_ref
        if isinstance(ref, str):
            self._set_ref = ref = self._lookup(ref)
        return ref

    def _lookup(self, ref: str) -> EmbeddingSet:
        return EmbeddingSet.from_dict(self.transport.find_set(ref).embedding_set)

    def _set(self, embedding_set: SetLike | None) -> EmbeddingSet:
        if embedding_set is not None:
            parsed = parse_set_ref(embedding_set)
            return self._lookup(parsed) if isinstance(parsed, str) else parsed
        es = self.embedding_set
        if es is None:
            raise InvalidEmbeddingSetError(
                f"no embedding_set: pass it to {type(self).__name__}(embedding_set={{...}}) or to log()."
            )
        return es

    def close(self) -> None:
        """Release the transport if this session created it."""
        if self._owns_transport and self._transport is not None:
            self._transport.close()
            self._transport = None

    def __repr__(self) -> str:
        ref = self._set_ref
        set_id = (ref if isinstance(ref, str) else ref.id)[:12] if ref is not None else None
        return f"<{type(self).__name__} set={set_id} url={self.config.chroma_url or 'embedded'}>"
