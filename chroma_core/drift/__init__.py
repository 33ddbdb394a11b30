"""Drift over time and clusters of a set: calibrated tests per window, and where the inputs moved.

``chroma.drift(set, window="1d")`` and ``chroma.clusters(set)`` (:mod:`.api`) ask a transport; the engine side
(:mod:`.compute`, over a store) is imported by the embedded transport and the service only.
"""

from chroma_core.drift.api import clusters, drift

__all__ = ["clusters", "drift"]
