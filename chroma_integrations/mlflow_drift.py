"""What ``autolog()`` logs for a drift report: one MLflow metric step per window (chroma_integrations.mlflow).

Each window of a report that ``chroma.drift`` returns while a run is active becomes one step of the metrics
``chroma.drift.<set>.<figure>``: ``<set>`` is the first 12 hex digits of the set's id (a run may watch several
sets), the step is the window's index on the calendar of its length (``start // window``: the same window is
the same step in every report and every run) and the timestamp is the window's end. Figures: ``count``,
``recommended_share``, ``ood_share``, ``reference_share``, ``share_p_value``, ``mmd``, ``mmd_p_value`` and
``drifted`` (1 for a ``drift`` verdict, 0 for ``no_drift``); a figure a window has none of (no verdict under 30
inputs, no answers) is not logged for it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["FIGURES", "window_metrics"]

FIGURES = ("recommended_share", "ood_share", "reference_share", "share_p_value", "mmd", "mmd_p_value")


def window_metrics(report: Any) -> list[tuple[int, int, dict[str, float]]]:
    """``(step, timestamp in ms, {metric key: value})`` per window of ``report`` (a DriftReport)."""
    prefix = f"chroma.drift.{report.set_id[:12]}."
    out = []
    for w in report.windows:
        values: dict[str, float] = {prefix + "count": float(w.count)}
        for name in FIGURES:
            value = getattr(w, name)
            if value is not None and math.isfinite(value):
                values[prefix + name] = float(value)
        if w.drifted is not None:
            values[prefix + "drifted"] = 1.0 if w.drifted else 0.0
        out.append((int(w.start // report.window), int(w.end * 1000), values))
    return out
