"""``GET /metrics``: Prometheus figures of the caller's application (official ``prometheus-client``).

Per set: its training and production record counts and the newest drift figures computed for it (by
``chroma.drift``, the CLI, the service or the page: they are kept in the set's state, so every replica shows
the same). A scrape reads counts and kept figures only; it never computes drift itself (a scrape must stay
cheap). Scrape with the application's key (``Authorization: Bearer <key>``): another application's sets are
never shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chroma_core.drift.latest import latest_of

__all__ = ["CONTENT_TYPE_LATEST", "render"]

#: (metric name, help, the kept figure it shows).
_DRIFT = (
    ("chroma_drift_detected", "1 when the newest judged window drifted, else 0", "drifted"),
    ("chroma_drift_window_inputs", "production inputs in the newest judged window", "count"),
    ("chroma_drift_window_end_timestamp_seconds", "end of the newest judged window", "end"),
    ("chroma_drift_ood_share", "share of the window's inputs tagged out_of_distribution", "ood_share"),
    ("chroma_drift_reference_share", "share of the held-out training reference over the threshold", "reference_share"),
    ("chroma_drift_share_p_value", "p-value of the out-of-distribution share test", "share_p_value"),
    ("chroma_drift_mmd", "MMD of the window against the reference", "mmd"),
    ("chroma_drift_mmd_p_value", "permutation p-value of the MMD test", "mmd_p_value"),
    ("chroma_drift_recommended_share", "share of the window's inputs recommended for labelling", "recommended_share"),
)


class _Sets(Collector):
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        sets = self.engine.list_sets()
        training = GaugeMetricFamily("chroma_training_records", "training records stored", labels=["set"])
        production = GaugeMetricFamily("chroma_production_records", "production records stored", labels=["set"])
        drift = {name: GaugeMetricFamily(name, text, labels=["set"]) for name, text, _ in _DRIFT}
        for info in sets:
            training.add_metric([info.id], info.training)
            production.add_metric([info.id], info.production)
            kept = latest_of(self.engine.store, info.id)
            if kept is None:
                continue
            for name, _, field in _DRIFT:
                value = kept.get(field)
                if value is not None:
                    drift[name].add_metric([info.id], float(value))
        yield training
        yield production
        yield from drift.values()


def render(engine: Any) -> bytes:
    """The exposition text of one application's sets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Sets(engine))
    return generate_latest(registry)  # type: ignore[no-any-return]
