from __future__ import annotations

import math

import numpy as np
import pytest

from chroma_core.drift.kmeans import kmeans
from chroma_core.drift.stats import mmd_test, normalized, share_test


def _fisher_by_hand(hits, n, ref_hits, ref_n):
    total, pooled = hits + ref_hits, n + ref_n
    return sum(
        math.comb(total, i) * math.comb(pooled - total, n - i) / math.comb(pooled, n)
        for i in range(hits, min(total, n) + 1)
    )


@pytest.mark.parametrize(("hits", "n", "ref_hits", "ref_n"), [(5, 100, 50, 1000), (30, 100, 50, 1000), (0, 40, 3, 60)])
def test_share_test_is_the_one_sided_fisher_exact_test(hits, n, ref_hits, ref_n):
    assert share_test(hits, n, ref_hits, ref_n) == pytest.approx(_fisher_by_hand(hits, n, ref_hits, ref_n), rel=1e-9)


def test_share_test_orders_by_evidence():
    assert share_test(0, 100, 50, 1000) == pytest.approx(1.0)
    assert share_test(30, 100, 50, 1000) < 1e-6 < share_test(8, 100, 50, 1000) < share_test(5, 100, 50, 1000)


def test_share_test_is_calibrated_under_the_null():
    rng = np.random.default_rng(0)
    p = [share_test(int(rng.binomial(200, 0.06)), 200, int(rng.binomial(1000, 0.06)), 1000) for _ in range(2000)]
    # Exact conditional tests are conservative: at most alpha, not far under it.
    assert 0.02 < np.mean(np.array(p) < 0.05) <= 0.06


def test_mmd_separates_shifted_samples_and_not_equal_ones():
    rng = np.random.default_rng(1)
    same = [mmd_test(rng.normal(size=(60, 8)), rng.normal(size=(80, 8)), rng=rng)[1] for _ in range(100)]
    assert 0.0 < np.mean(np.array(same) < 0.05) < 0.12
    shifted = mmd_test(rng.normal(size=(60, 8)) + 0.8, rng.normal(size=(80, 8)), rng=rng)
    assert shifted[0] > 0 and shifted[1] < 0.01


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(2)
    centers = np.eye(6)[:3] * 5
    x = normalized(np.concatenate([c + 0.1 * rng.normal(size=(50, 6)) for c in centers]))
    centroids, labels = kmeans(x, 3, rng=rng)
    assert centroids.shape == (3, 6)
    assert sorted(len(set(labels[i * 50 : (i + 1) * 50])) for i in range(3)) == [1, 1, 1]
    assert len(set(labels)) == 3


def test_normalized_keeps_the_direction_of_tiny_and_huge_rows():
    """Squared in float32, components under ~1e-19 underflow and over ~1e19 overflow; drift uses the engine's
    normalisation, so a copy scaled by 1e-30 or 1e30 is the same unit row as the original."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 16)).astype(np.float32)
    rows = np.concatenate([base * scale for scale in (1e-30, 1e-20, 1.0, 1e20, 1e30)]).astype(np.float32)
    unit = normalized(rows)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, np.repeat(unit[2:3], 5, axis=0), atol=1e-6)
    assert not normalized(np.zeros((1, 4))).any()  # a zero row stays zero
