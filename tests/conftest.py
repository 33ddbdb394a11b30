from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test runs in its own directory (so ./chroma.json and ./.chroma are its own) with no CHROMA_* env."""
    for var in list(os.environ):
        if var.startswith("CHROMA_") and var != "CHROMA_TEST_MODE":
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


SET = {"model": "user-exp-abc", "model_version": "123", "layer": "context"}


def clusters(n_per: int = 200, dim: int = 32, k: int = 5, noise: float = 0.3, seed: int = 0):
    """Gaussian clusters: (vectors float32, labels list[str], centers)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim))
    x = np.concatenate([c + noise * rng.normal(size=(n_per, dim)) for c in centers]).astype(np.float32)
    labels = [f"c{i // n_per}" for i in range(len(x))]
    return x, labels, centers
