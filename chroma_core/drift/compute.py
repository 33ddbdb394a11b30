"""Drift per time window and a set's clusters, computed over a store (the engine side of ``chroma.drift``).

Per window of production inputs (read from the store by time, with the answers Chroma gave them):

1. the share tagged ``out_of_distribution`` against the share of a held-out, cross-fitted training reference over
   the same novelty threshold (:mod:`.reference`), one-sided exact test (:func:`.stats.share_test`);
2. MMD of up to :data:`MMD_SAMPLE` of its embeddings against the reference, permutation p-value;
3. the verdict: ``drift`` when either p-value is under ``alpha / 2`` (Bonferroni over the two tests, so a window
   of in-distribution inputs is flagged at ``alpha`` at most); no verdict under :data:`MIN_INPUTS` inputs;
4. where: the clusters whose share of the window grew most (:mod:`.where`), with example inputs.

Only ``chroma_core.drift``, the public types and the scorer's novelty functions (``novelty_of``, the centred
kinds' :mod:`chroma_core.engine.centred`) are imported: this runs wherever a store does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from chroma_core.drift.latest import keep_latest
from chroma_core.drift.reference import MIN_TRAINING, References, reference_of
from chroma_core.drift.stats import mmd_test, normalized, share_test
from chroma_core.drift.where import Regions
from chroma_core.errors import ConfigError, UnknownEmbeddingSetError
from chroma_core.types import TAGS, Thresholds
from chroma_core.types.drift import MAX_WINDOWS, ClusterReport, DriftReport, DriftRequest, WindowDrift

__all__ = ["MIN_INPUTS", "MMD_SAMPLE", "cluster_report", "drift_report"]

#: Fewer inputs than this in a window and neither test can say anything calibrated (docs/drift.md): no verdict.
MIN_INPUTS = 30
#: Embeddings of a window (and of the reference) the MMD test compares: its cost grows with the square.
MMD_SAMPLE = 500
#: Embeddings of a window read to place it in the clusters.
WINDOW_SAMPLE = 5000
_TOP_CLUSTERS = 5
_OOD_BIT = 1 << TAGS.index("out_of_distribution")
_NOVELTY = 0  # column of the novelty threshold in ``Answers.thresholds``


def _set(store: Any, set_id: str) -> Any:
    info = store.get_set(set_id)
    if info is None:
        raise UnknownEmbeddingSetError(set_id)
    return info


def _share(
    answers: Any, positions: np.ndarray, references: References
) -> tuple[float | None, float | None, float | None]:
    """(window share tagged OOD, reference share over the window's threshold, p-value); Nones without answers."""
    answered = positions[answers.answered[positions]]
    thresholds = answers.thresholds[answered, _NOVELTY]
    thresholds = thresholds[np.isfinite(thresholds)]
    if len(answered) < MIN_INPUTS or not len(thresholds):
        return None, None, None
    hits = int(np.sum((answers.tags[answered] & _OOD_BIT) != 0))
    threshold = float(np.median(thresholds))
    ref_hits, ref_n = references.for_threshold(threshold).share_over(threshold)
    return hits / len(answered), ref_hits / ref_n, share_test(hits, len(answered), ref_hits, ref_n)


def _window(
    store: Any,
    request: DriftRequest,
    answers: Any,
    positions: np.ndarray,
    bounds: tuple[float, float],
    references: References | None,
    regions: Regions | None,
    rng: np.random.Generator,
) -> WindowDrift:
    count = len(positions)
    answered = answers.answered[positions]
    recommended = float(answers.training_recommended[positions][answered].mean()) if answered.any() else None
    if count == 0:
        return WindowDrift(*bounds, 0, 0, None, None, None, None, None, None, "empty", "no production inputs")
    if references is None or regions is None:
        why = f"the set has too few training inputs to hold out a reference (drift needs {MIN_TRAINING})"
        return WindowDrift(*bounds, count, int(answered.sum()), recommended, *(None,) * 5, "too_few_inputs", why)
    picked = positions if count <= WINDOW_SAMPLE else np.sort(rng.choice(positions, WINDOW_SAMPLE, replace=False))
    rows = answers.rows[picked]
    vectors = store.vectors_at(request.set_id, "production", rows)
    flag = np.where(answers.answered[picked], answers.training_recommended[picked].astype(float), np.nan)
    clusters = regions.clusters(
        rows, regions.label(vectors), flag, examples=request.examples, top=_TOP_CLUSTERS, vectors=vectors
    )
    if count < MIN_INPUTS:
        why = f"{count} inputs in this window; the tests need {MIN_INPUTS} or more to give a verdict"
        return WindowDrift(
            *bounds, count, int(answered.sum()), recommended, *(None,) * 5, "too_few_inputs", why, clusters
        )
    ood, ref_share, p_share = _share(answers, positions, references)
    reference = references.default
    mine = normalized(vectors[rng.permutation(len(vectors))[:MMD_SAMPLE]])
    theirs = reference.vectors[rng.permutation(len(reference))[:MMD_SAMPLE]]
    mmd, p_mmd = mmd_test(mine, theirs, permutations=request.permutations, rng=rng)
    p_values = [p for p in (p_share, p_mmd) if p is not None]
    drifted = min(p_values) < request.alpha / len(p_values)
    return WindowDrift(
        *bounds,
        count,
        int(answered.sum()),
        recommended,
        ood,
        ref_share,
        p_share,
        mmd,
        p_mmd,
        "drift" if drifted else "no_drift",
        "" if p_share is not None else "too few answered inputs for the share test; MMD alone",
        clusters,
    )


def drift_report(store: Any, request: DriftRequest, *, now: float | None = None) -> DriftReport:
    """Drift of ``request.set_id`` per window (see the module docstring)."""
    info = _set(store, request.set_id)
    answers = store.answers(request.set_id, since=request.since, until=request.until)
    empty = DriftReport(request.set_id, request.window, request.alpha, 0, ())
    if not len(answers) and request.since is None:
        return dataclasses.replace(empty, message="no production inputs in this range: nothing to compare yet")
    start = request.since if request.since is not None else float(answers.times.min())
    latest = float(answers.times.max()) + 1e-6 if len(answers) else -math.inf  # since given, nothing in range
    end = request.until if request.until is not None else max(now or time.time(), latest)
    n_windows = max(1, math.ceil((end - start) / request.window))
    if n_windows > MAX_WINDOWS:
        raise ConfigError(
            f"{n_windows} windows of {request.window:g} s from {start:.0f} to {end:.0f}; at most {MAX_WINDOWS} fit "
            "one report. Use a longer window or pass since/until."
        )
    defaults = Thresholds()  # the score the stored answers were given with, unless a window's threshold says another
    reference = reference_of(
        store, request.set_id, info.training, info.revision, k=defaults.k, novelty_score=defaults.novelty_score
    )
    rng = np.random.default_rng(request.seed)
    regions: Regions | None = None
    references: References | None = None
    if reference is not None:
        references = References(store, request.set_id, info.training, info.revision, reference)
        regions = Regions(store, request.set_id, info.training, answers.rows, request.clusters, rng)
    index = np.clip(((answers.times - start) // request.window).astype(np.int64), 0, n_windows - 1)
    windows = []
    for w in range(n_windows):
        bounds = (start + w * request.window, min(end, start + (w + 1) * request.window))
        positions = np.flatnonzero(index == w)
        windows.append(_window(store, request, answers, positions, bounds, references, regions, rng))
    report = DriftReport(request.set_id, request.window, request.alpha, len(reference or ()), tuple(windows))
    keep_latest(store, report)  # for /metrics and the page
    return report


def cluster_report(
    store: Any, set_id: str, *, k: int = 20, since: float | None = None, examples: int = 3, seed: int = 0
) -> ClusterReport:
    """A set's training and production inputs (those logged from ``since``) in ``k`` clusters at most."""
    info = _set(store, set_id)
    if info.training < 2:
        raise ConfigError(f"set {set_id[:12]} has {info.training} training inputs; clusters need 20 or more.")
    answers = store.answers(set_id, since=since)
    rng = np.random.default_rng(seed)
    regions = Regions(store, set_id, info.training, answers.rows, k, rng)
    limit = WINDOW_SAMPLE * 4
    positions = np.arange(len(answers))
    if len(positions) > limit:
        positions = np.sort(rng.choice(len(answers), limit, replace=False))
    rows = answers.rows[positions]
    vectors = store.vectors_at(set_id, "production", rows)
    labels = regions.label(vectors) if len(rows) else np.empty(0, dtype=np.int64)
    flag = np.where(answers.answered[positions], answers.training_recommended[positions].astype(float), np.nan)
    clusters = regions.clusters(rows, labels, flag, examples=examples, vectors=vectors)
    return ClusterReport(set_id, "kmeans", info.training, info.production, len(regions.training_rows), clusters)
