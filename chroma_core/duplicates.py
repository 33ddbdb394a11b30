"""``chroma.duplicates``: near-duplicate training records, and training inputs that production or another set repeats.

>>> report = duplicates(train_set, against=test_set)   # doctest: +SKIP
>>> [g.input_uris for g in report.groups][:1], [c.input_uri for c in report.leaks][:2]  # doctest: +SKIP
([('/img/4.png', '/img/4-copy.png')], ['/test/17.png', '/test/93.png'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_core.config import ConfigOptions, load_config
from chroma_core.embedding_set import SetRef, set_id_of
from chroma_core.transport import Transport, transport_for
from chroma_core.types import DuplicateReport, DuplicatesRequest

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["duplicates"]


def duplicates(
    embedding_set: SetRef,
    *,
    against: SetRef | None = None,
    threshold: float | None = None,
    production: bool = True,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> DuplicateReport:
    """Near duplicates of a set's training records (docs/recommendations.md, "Near duplicates").

    ``groups``: training records that are near copies of one another; ``production``: production inputs that copy a
    training record (``production=False`` skips them); ``leaks``: training records of the set ``against`` (say a
    test split) that copy a training record of this one. ``threshold`` is a cosine distance; by default the set's
    calibrated ``near_duplicate`` threshold, the one its queries are tagged with. Configuration keywords are those
    of sessions.
    """
    set_id_of(embedding_set)  # a malformed reference is refused before anything is opened
    if against is not None:
        set_id_of(against)
    owned = transport is None
    tr = transport_for(load_config(**config)) if transport is None else transport
    try:
        other = None if against is None else tr.set_id(against)
        return tr.duplicates(DuplicatesRequest(tr.set_id(embedding_set), other, threshold, production))
    finally:
        if owned:
            tr.close()
