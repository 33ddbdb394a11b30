"""The thresholds behind the tags: calibrated from the training data unless overridden, validated once."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from chroma_core.errors import ConfigError

__all__ = ["DEFAULT_THRESHOLDS", "NOVELTY_SCORES", "Thresholds"]

#: How ``novelty`` is computed (docs/recommendations.md compares them on real data): the mean cosine distance to
#: the k nearest training inputs *of one training label*, the closest, once the training mean is removed from
#: every vector (``knn_class_centred``, the default since issue 15's last round: the best measured on both benchmark
#: corpora; the label is a record's own, else the one its inferences predict; a set with no labels at all gets
#: ``knn_centred``), the same to the k nearest whatever their label (``knn_centred``), the raw mean cosine distance
#: to the k nearest (``knn_mean``, the default before) or the distance to the k-th one (``knn_kth``, Sun et al.
#: 2022; the first default).
NOVELTY_SCORES = ("knn_mean", "knn_kth", "knn_centred", "knn_class_centred")

#: Overridable cut-offs and their ranges (cosine distances lie in [0, 2]; margins and shares in [0, 1]).
_CUTOFFS = {"novelty": 2.0, "near_duplicate": 2.0, "uncertainty": 1.0, "label_disagreement": 1.0}
#: Whole-number settings and their ranges: a k in the thousands would make every query scan for nothing.
_COUNTS = {"k": (1, 1000), "min_training": (2, 10**9), "neighbors": (0, 100)}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"thresholds.{name} must be a finite number, not {value!r}.")
    return float(value)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Overrides of the calibrated thresholds; ``None`` means "calibrated from the training data".

    >>> Thresholds(novelty=0.3, percentile=99).percentile
    99.0
    """

    novelty: float | None = None
    near_duplicate: float | None = None  # cosine *distance* to the nearest training input
    uncertainty: float | None = None
    label_disagreement: float | None = None
    percentile: float = 95.0
    duplicate_percentile: float = 1.0
    k: int = 10
    min_training: int = 20
    neighbors: int = 5
    novelty_score: str = "knn_class_centred"

    def __post_init__(self) -> None:
        if self.novelty_score not in NOVELTY_SCORES:
            raise ConfigError(
                f"thresholds.novelty_score must be one of {', '.join(map(repr, NOVELTY_SCORES))}, "
                f"not {self.novelty_score!r}."
            )
        for name, top in _CUTOFFS.items():
            value = getattr(self, name)
            if value is not None:
                number = _number(name, value)
                if not 0.0 <= number <= top:
                    raise ConfigError(f"thresholds.{name} must lie between 0 and {top:g}, not {value!r}.")
                object.__setattr__(self, name, number)
        for name in ("percentile", "duplicate_percentile"):
            number = _number(name, getattr(self, name))
            if not 0.0 < number < 100.0:
                raise ConfigError(f"thresholds.{name} must lie strictly between 0 and 100, not {number:g}.")
            object.__setattr__(self, name, number)
        for name, (low, high) in _COUNTS.items():
            value = getattr(self, name)
            number = _number(name, value)
            if not number.is_integer() or not low <= number <= high:
                raise ConfigError(f"thresholds.{name} must be a whole number from {low} to {high}, not {value!r}.")
            object.__setattr__(self, name, int(number))

    @classmethod
    def coerce(cls, value: Thresholds | Mapping[str, Any] | None) -> Thresholds:
        """A ``Thresholds`` from itself, a dict of overrides (unknown names refused) or None (the defaults)."""
        if value is None:
            return DEFAULT_THRESHOLDS
        if isinstance(value, Thresholds):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"thresholds must be a dict such as {{'novelty': 0.3}}, not {type(value).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}.")
        return cls(**value)

    def overrides(self) -> dict[str, Any]:
        """Only what differs from the defaults (what a client sends; the service applies its defaults)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(DEFAULT_THRESHOLDS, f.name)
        }


DEFAULT_THRESHOLDS = Thresholds()
