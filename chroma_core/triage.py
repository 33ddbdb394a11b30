"""What to label next, and how to share a set: :func:`select` and :func:`export`.

Both work on the embedded engine and on a service alike (the same configuration as sessions picks which).

>>> selection = select({"model": "m", "model_version": "1", "layer": "ctx"}, n=100)  # doctest: +SKIP
>>> [p.input_uri for p in selection.picks][:3]                                      # doctest: +SKIP
['/images/981.png', '/images/17.png', '/images/553.png']
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chroma_core.config import ConfigOptions, load_config
from chroma_core.embedding_set import SetRef, set_id_of
from chroma_core.errors import ChromaError
from chroma_core.export import ExportReport, export_set
from chroma_core.records import MODES, Records
from chroma_core.transport import Transport, transport_for
from chroma_core.types import RecordTable, Selection, SelectRequest, Thresholds

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["export", "records", "select"]


def _transport(transport: Transport | None, config: ConfigOptions) -> tuple[Transport, bool]:
    if transport is not None:
        return transport, False
    return transport_for(load_config(**config)), True


def select(
    embedding_set: SetRef,
    n: int = 100,
    *,
    diversity: float = SelectRequest.diversity,
    since: float | None = None,
    rescore: bool = False,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    typicality: float = SelectRequest.typicality,
    balance: float = SelectRequest.balance,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> Selection:
    """The ``n`` stored production inputs of a set most worth labelling, spread over the embedding space.

    Recommended inputs are ranked by how far their strongest signal exceeds its threshold; maximal marginal
    relevance then trades that priority against similarity to the inputs already picked (``diversity`` from 0,
    priority order, to 1, spread only), and near duplicates of a pick are dropped. ``typicality`` (0 to 1) weighs
    priority by local density among the candidates, so a dense region of novel inputs comes before a lone
    outlier; ``balance`` (0 to 1) spreads the picks over the candidates' predicted labels (1: every class before
    any repeats). The defaults (diversity 0.7, typicality 1, balance 0) are the best measured on real text
    embeddings; ``diversity=0.5, typicality=0`` is the plain MMR of before. See ``docs/triage.md``.

    ``embedding_set`` is the set's dict, its id or a unique id prefix (8+ hex digits); ``since`` (seconds since
    the epoch) keeps only inputs logged from then on; ``rescore=True`` judges every input against the current
    training data instead of the answer stored with it. Configuration keywords (``chroma_server_url``,
    ``persist_directory``, ...) are those of sessions.
    """
    set_id_of(embedding_set)  # a malformed reference is refused before anything is opened
    th = Thresholds.coerce(thresholds)
    tr, owned = _transport(transport, config)
    try:
        return tr.select(SelectRequest(tr.set_id(embedding_set), n, diversity, since, rescore, th, typicality, balance))
    finally:
        if owned:
            tr.close()


def export(
    embedding_set: SetRef,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    modes: Sequence[str] = ("training", "production"),
    overwrite: bool = False,
    progress: bool | None = None,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> ExportReport:
    """Write a set's records (and the answers stored with production inputs) to a Parquet or JSONL file.

    The format comes from ``format`` or the file name (``.parquet``, ``.jsonl``, ``.jsonl.gz``); see
    ``docs/export.md``. An existing file is kept unless ``overwrite=True``. ``progress``: a bar on a terminal
    (None, the default), never (False) or always (True).
    """
    tr, owned = _transport(transport, config)
    try:
        set_id = tr.set_id(embedding_set)
        return export_set(tr, set_id, path, format=format, modes=modes, overwrite=overwrite, progress=progress)
    finally:
        if owned:
            tr.close()


def records(
    embedding_set: SetRef,
    *,
    mode: str = "production",
    limit: int | None = None,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> RecordTable:
    """A set's stored records of one ``mode`` (``production`` or ``training``), with their answers and previews,
    as a table: ``chroma.records(set).to_pandas()``. ``limit`` keeps the first ``limit`` records."""
    if mode not in MODES:
        raise ChromaError(f"mode must be 'training' or 'production', not {mode!r}.")
    tr, owned = _transport(transport, config)
    try:
        info = tr.find_set(embedding_set)
        count = info.training if mode == "training" else info.production
        count = count if limit is None else min(count, max(0, limit))
        pages: list[Records] = []
        start = 0
        while start < count:
            _, page = tr.records(info.id, mode, start, min(_PAGE, count - start))  # type: ignore[arg-type]
            if not len(page):
                break
            pages.append(page)
            start += len(page)
    finally:
        if owned:
            tr.close()
    rows = Records.concat(pages, info.dimension)
    n = len(rows)
    return RecordTable(
        info.id,
        mode,
        rows.vectors,
        rows.ids,
        rows.input_uris,
        [rows.preview(i) for i in range(n)],
        rows.labels,
        rows.inferences,
        rows.times,
        [rows.result(i) for i in range(n)],
    )


#: Records read per request: a service answers at most this many in one page.
_PAGE = 5000
