"""The newest drift figures of a set, kept in the store's per-set state so that ``/metrics``, the page and every
service replica read them without computing drift again."""

from __future__ import annotations

from typing import Any

from chroma_core.types.drift import DriftReport

__all__ = ["KEY", "keep_latest", "latest_of"]

KEY = "drift/latest"
_FIELDS = ("start", "end", "count", "recommended_share", "ood_share", "reference_share", "share_p_value", "mmd")


def keep_latest(store: Any, report: DriftReport) -> None:
    """Keep the newest window of ``report`` that has a verdict, unless a newer one is kept already."""
    judged = [w for w in report.windows if w.drifted is not None]
    if not judged:
        return
    window = judged[-1]
    kept = store.read_state(report.set_id, KEY)
    if kept is not None and float(kept.get("end", 0.0)) > window.end:
        return
    value: dict[str, Any] = {name: getattr(window, name) for name in _FIELDS}
    value.update(mmd_p_value=window.mmd_p_value, drifted=window.drifted, alpha=report.alpha, window=report.window)
    store.write_state(report.set_id, KEY, value)


def latest_of(store: Any, set_id: str) -> dict[str, Any] | None:
    """The figures :func:`keep_latest` kept for a set, or None."""
    value: dict[str, Any] | None = store.read_state(set_id, KEY)
    return value
