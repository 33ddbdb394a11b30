"""What a model said about an input, read from the shapes models commonly return: class scores, margin, label."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_scores", "label_and_uncertainty", "predicted_label", "uncertainty_of"]


def class_scores(inferences: Any) -> list[tuple[Any, float]]:
    """(label, score) pairs found in common inference shapes, highest first; empty when there are none.

    Understood: ``{"label": L, "score": s}`` and lists of them (Hugging Face pipelines, possibly nested one level),
    ``{"scores": [...], "labels": [...]}``, and ``{"probabilities": {label: p}}``.
    """
    pairs: list[tuple[Any, float]] = []
    item = inferences
    if isinstance(item, list) and len(item) == 1 and isinstance(item[0], list):
        item = item[0]
    if isinstance(item, dict):
        if "label" in item and isinstance(item.get("score"), (int, float)):
            pairs = [(item["label"], float(item["score"]))]
        elif isinstance(item.get("scores"), list):
            labels = item.get("labels") or list(range(len(item["scores"])))
            scores = item["scores"]
            pairs = [(lab, float(s)) for lab, s in zip(labels, scores, strict=False) if isinstance(s, (int, float))]
        elif isinstance(item.get("probabilities"), dict):
            pairs = [(lab, float(s)) for lab, s in item["probabilities"].items() if isinstance(s, (int, float))]
    elif isinstance(item, list):
        pairs = [
            (d["label"], float(d["score"]))
            for d in item
            if isinstance(d, dict) and "label" in d and isinstance(d.get("score"), (int, float))
        ]
    pairs = [(lab, s) for lab, s in pairs if np.isfinite(s)]
    pairs.sort(key=lambda p: -p[1])
    return pairs


def _margin(pairs: list[tuple[Any, float]]) -> float | None:
    if not pairs:
        return None
    p1 = pairs[0][1]
    p2 = pairs[1][1] if len(pairs) > 1 else max(0.0, 1.0 - p1)
    return float(min(1.0, max(0.0, 1.0 - (p1 - p2))))


def _label(pairs: list[tuple[Any, float]], inferences: Any) -> Any:
    if pairs:
        return pairs[0][0]
    if isinstance(inferences, dict) and "label" in inferences:
        return inferences["label"]
    return None


def uncertainty_of(inferences: Any) -> float | None:
    """``1 - (p1 - p2)`` of the two highest class scores (None: no class scores)."""
    return _margin(class_scores(inferences))


def predicted_label(inferences: Any) -> Any:
    """The label of the highest class score, else an inference's own ``label`` (None: neither)."""
    return _label(class_scores(inferences), inferences)


def label_and_uncertainty(inferences: Any) -> tuple[Any, float | None]:
    """:func:`predicted_label` and :func:`uncertainty_of` at once: the class scores are parsed once (a set's model
    load does this for every training record)."""
    if inferences is None:
        return None, None
    pairs = class_scores(inferences)
    return _label(pairs, inferences), _margin(pairs)
