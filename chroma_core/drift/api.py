"""The public face of drift: :func:`drift` and :func:`clusters`, on the embedded engine or a service alike.

>>> report = drift({"model": "m", "model_version": "1", "layer": "ctx"}, window="1d")  # doctest: +SKIP
>>> [(w.verdict, w.ood_share) for w in report.windows][-2:]                             # doctest: +SKIP
[('no_drift', 0.052), ('drift', 0.31)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chroma_core import hooks
from chroma_core.config import ConfigOptions
from chroma_core.embedding_set import SetRef, set_id_of
from chroma_core.transport import Transport
from chroma_core.triage import _transport  # one rule for "the caller's transport, or one of ours to close"
from chroma_core.types.drift import ClusterReport, DriftReport, DriftRequest, parse_window

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["clusters", "drift"]


def drift(
    embedding_set: SetRef,
    window: str | float = "1d",
    *,
    since: float | None = None,
    until: float | None = None,
    alpha: float = 0.05,
    clusters: int = 20,
    permutations: int = 200,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> DriftReport:
    """Whether a set's production inputs drifted from its training data, per window, and where.

    ``window``: ``"1h"``, ``"1d"``, ``"1w"``... or seconds; windows start at ``since`` (seconds since the epoch;
    default: the first production input) and run to ``until`` (default: now). Each window gets two calibrated
    tests against a held-out training reference (the out-of-distribution share, and MMD), a verdict at false-alarm
    rate ``alpha`` (no verdict under 30 inputs), and its ``clusters`` ranked by drift ratio with example inputs.
    See docs/drift.md.
    """
    set_id_of(embedding_set)  # a malformed reference is refused before anything is opened
    tr, owned = _transport(transport, config)
    try:
        request = DriftRequest(
            tr.set_id(embedding_set),
            parse_window(window),
            since,
            until,
            alpha,
            clusters,
            permutations,
        )
        report = tr.drift(request)
        hooks.emit_drift_reported(report)  # autolog logs each window as MLflow metrics (chroma_integrations)
        return report
    finally:
        if owned:
            tr.close()


def clusters(
    embedding_set: SetRef,
    k: int = 20,
    *,
    since: float | None = None,
    transport: Transport | None = None,
    **config: Unpack[ConfigOptions],
) -> ClusterReport:
    """A set's training and production inputs in ``k`` clusters at most: per cluster the counts of each, the drift
    ratio, the share recommended for labelling and representative inputs (docs/drift.md)."""
    set_id_of(embedding_set)
    tr, owned = _transport(transport, config)
    try:
        return tr.clusters(tr.set_id(embedding_set), k, since)
    finally:
        if owned:
            tr.close()
