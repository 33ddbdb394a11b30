"""Drift over time: what ``chroma.drift`` is asked (:class:`DriftRequest`) and what it answers (:class:`DriftReport`).

A report holds one :class:`WindowDrift` per time window: two calibrated tests of the window against a held-out
reference drawn from the set's training data, a verdict, and the clusters whose share grew most (:class:`Cluster`).
Every type turns into plain JSON with ``to_dict()`` and back with ``from_dict()`` (the service sends them so).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from chroma_core.errors import ConfigError

__all__ = [
    "VERDICTS",
    "Cluster",
    "ClusterReport",
    "DriftReport",
    "DriftRequest",
    "Example",
    "WindowDrift",
    "parse_window",
]

#: ``drift``: a test rejected "same distribution as training" at the report's ``alpha``; ``no_drift``: neither
#: did; ``too_few_inputs``: the window holds fewer inputs than the tests need (no verdict); ``empty``: none at all.
VERDICTS = ("drift", "no_drift", "too_few_inputs", "empty")
Verdict = Literal["drift", "no_drift", "too_few_inputs", "empty"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
#: More windows than this in one report is a mistake (a 1-second window over a year), not a question.
MAX_WINDOWS = 2000


def parse_window(window: str | float | int) -> float:
    """A window length in seconds from ``"30m"``, ``"1h"``, ``"1d"``, ``"1w"`` or a number of seconds."""
    if isinstance(window, bool):
        raise ConfigError(f"window must be a duration such as '1h' or '1d', not {window!r}.")
    if isinstance(window, (int, float)):
        seconds = float(window)
    else:
        match = _WINDOW.match(str(window))
        if match is None:
            raise ConfigError(
                f"window {window!r} is not a duration: write a number and a unit (s, m, h, d, w), e.g. '1h' or '1d'."
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"window must be a positive duration, not {window!r}.")
    return seconds


def _finite(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of seconds since the epoch, not {value!r}.")
    return float(value)


@dataclasses.dataclass(frozen=True)
class DriftRequest:
    """Drift of a set's production inputs per window of ``window`` seconds from ``since`` to ``until``.

    ``since`` None: from the set's first production input; ``until`` None: now. ``alpha`` is the false-alarm rate
    promised for a window of in-distribution inputs (both tests together). ``clusters`` is how many k-means
    clusters localise the drift; ``permutations`` how many the MMD test's p-value is computed from.
    """

    set_id: str
    window: float = 86400.0
    since: float | None = None
    until: float | None = None
    alpha: float = 0.05
    clusters: int = 20
    permutations: int = 200
    examples: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "window", parse_window(self.window))
        object.__setattr__(self, "since", _finite("since", self.since))
        object.__setattr__(self, "until", _finite("until", self.until))
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ConfigError(f"until ({self.until}) must come after since ({self.since}).")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 0.5:
            raise ConfigError(f"alpha must lie strictly between 0 and 0.5 (e.g. 0.05), not {self.alpha!r}.")
        for name, low, high in (("clusters", 2, 200), ("permutations", 20, 10_000), ("examples", 0, 50)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
        if self.since is not None and self.until is not None and (self.until - self.since) / self.window > MAX_WINDOWS:
            raise ConfigError(
                f"{(self.until - self.since) / self.window:.0f} windows from since to until; at most {MAX_WINDOWS} "
                "fit one report. Use a longer window or a shorter range."
            )

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "set_id"}

    @classmethod
    def from_wire(cls, set_id: str, body: Mapping[str, Any]) -> DriftRequest:
        known = {f.name for f in dataclasses.fields(cls)} - {"set_id"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConfigError(f"unknown drift option(s) {unknown}; known: {sorted(known)}.")
        return cls(set_id, **dict(body))


@dataclasses.dataclass(frozen=True)
class Example:
    """One input shown as an example: its uri and, where it has one, its preview text."""

    input_uri: str
    preview: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"input_uri": self.input_uri, "preview": self.preview}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Example:
        return cls(d["input_uri"], d.get("preview"))


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One region of the embedding space: how much of training and of production falls in it.

    ``drift_ratio`` is the cluster's share of production inputs over its share of training inputs (each smoothed
    by half an input, so an empty cluster gives a finite ratio): above 1, production moved into it.
    ``recommended_share`` is the share of its production inputs Chroma recommended labelling (None: none).
    """

    cluster: int
    training: int
    production: int
    drift_ratio: float
    recommended_share: float | None
    examples: tuple[Example, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["examples"] = [e.to_dict() for e in self.examples]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cluster:
        return cls(
            int(d["cluster"]),
            int(d["training"]),
            int(d["production"]),
            float(d["drift_ratio"]),
            None if d.get("recommended_share") is None else float(d["recommended_share"]),
            tuple(Example.from_dict(e) for e in d.get("examples", ())),
        )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclasses.dataclass(frozen=True)
class WindowDrift:
    """One window ``[start, end)``: its tests, its verdict and where it moved.

    - ``ood_share``: the share of its answered inputs tagged ``out_of_distribution``; ``reference_share``: the
      share of a held-out training reference over the same novelty threshold (what in-distribution inputs give;
      not the nominal 5%); ``share_p_value``: the one-sided exact test that the window's share is the higher.
    - ``mmd``, ``mmd_p_value``: maximum mean discrepancy of the window's embeddings against the reference
      (Gaussian kernel, median-heuristic bandwidth) and its permutation p-value.
    - ``verdict``: one of :data:`VERDICTS`; ``drifted`` is None when there is no verdict, and ``message`` says why.
    """

    start: float
    end: float
    count: int
    answered: int
    recommended_share: float | None
    ood_share: float | None
    reference_share: float | None
    share_p_value: float | None
    mmd: float | None
    mmd_p_value: float | None
    verdict: Verdict
    message: str = ""
    clusters: tuple[Cluster, ...] = ()

    @property
    def drifted(self) -> bool | None:
        return {"drift": True, "no_drift": False}.get(self.verdict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clusters"] = [c.to_dict() for c in self.clusters]
        d["drifted"] = self.drifted
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowDrift:
        return cls(
            float(d["start"]),
            float(d["end"]),
            int(d["count"]),
            int(d["answered"]),
            _opt(d.get("recommended_share")),
            _opt(d.get("ood_share")),
            _opt(d.get("reference_share")),
            _opt(d.get("share_p_value")),
            _opt(d.get("mmd")),
            _opt(d.get("mmd_p_value")),
            d["verdict"],
            d.get("message", ""),
            tuple(Cluster.from_dict(c) for c in d.get("clusters", ())),
        )


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """Drift of one set per window, oldest first. ``reference`` is how many training inputs were held out."""

    set_id: str
    window: float
    alpha: float
    reference: int
    windows: tuple[WindowDrift, ...]
    message: str = ""

    @property
    def latest(self) -> WindowDrift | None:
        """The newest window, or None when there is none."""
        return self.windows[-1] if self.windows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "window": self.window,
            "alpha": self.alpha,
            "reference": self.reference,
            "message": self.message,
            "windows": [w.to_dict() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftReport:
        return cls(
            d["set_id"],
            float(d["window"]),
            float(d["alpha"]),
            int(d["reference"]),
            tuple(WindowDrift.from_dict(w) for w in d["windows"]),
            d.get("message", ""),
        )


@dataclasses.dataclass(frozen=True)
class ClusterReport:
    """A set's training and production inputs clustered: per cluster counts, drift ratio, examples.

    ``method`` names the clustering (``kmeans``) and ``sample`` how many inputs of each mode it was fitted on.
    """

    set_id: str
    method: str
    training: int
    production: int
    sample: int
    clusters: tuple[Cluster, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "method": self.method,
            "training": self.training,
            "production": self.production,
            "sample": self.sample,
            "clusters": [c.to_dict() for c in self.clusters],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClusterReport:
        return cls(
            d["set_id"],
            d["method"],
            int(d["training"]),
            int(d["production"]),
            int(d["sample"]),
            tuple(Cluster.from_dict(c) for c in d["clusters"]),
        )
