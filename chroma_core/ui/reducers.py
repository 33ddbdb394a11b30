"""The 2-D projections of the map: PCA (numpy, always there) and UMAP (the ``[umap]`` extra, opt-in).

Both are fitted on one bounded sample of unit rows and then map any chunk of rows onto the plane, so a set of any
size is projected in bounded memory. UMAP separates clusters that PCA lays over one another, but its transform of
new rows costs a nearest-neighbour search and an optimisation per chunk: about 850 rows a second here, so a million
points take 20 minutes where PCA takes seconds (docs/ui.md, benchmarks/bench_ui.py). PCA stays the
default; ``method="umap"`` asks for UMAP, and the page computes it in the background with progress.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Protocol

import numpy as np

from chroma_core.errors import ConfigError

__all__ = ["METHODS", "PCA", "UMAP", "Reducer", "reducer", "umap_available"]

#: What ``method=`` accepts: ``auto`` is PCA (see the module docstring for why UMAP is not the default).
METHODS = ("auto", "pca", "umap")


class Reducer(Protocol):
    name: str
    explained: tuple[float, float]

    def fit(self, sample: np.ndarray) -> Reducer: ...
    def transform(self, rows: np.ndarray) -> np.ndarray: ...


class PCA:
    """The two principal axes of the sample (SVD); ``explained`` is each axis's share of the sample's variance."""

    name = "pca"

    def __init__(self) -> None:
        self.explained: tuple[float, float] = (0.0, 0.0)
        self._mean = np.zeros(0, dtype=np.float32)
        self._axes = np.zeros((2, 0), dtype=np.float32)

    def fit(self, sample: np.ndarray) -> PCA:
        x = np.asarray(sample, dtype=np.float64)
        mean = x.mean(axis=0)
        axes = np.zeros((2, x.shape[1]))
        variances = np.zeros(2)
        if len(x) < 2:
            axes[:, : min(2, x.shape[1])] = np.eye(2, min(2, x.shape[1]))
        else:
            _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
            axes[: min(2, len(vt))] = vt[:2]
            variances[: min(2, len(s))] = (s[:2] ** 2) / (len(x) - 1)
            total = float(((x - mean) ** 2).sum() / (len(x) - 1)) or 1.0
            variances /= total
        self._mean, self._axes = mean.astype(np.float32), axes.astype(np.float32)
        self.explained = (float(variances[0]), float(variances[1]))
        return self

    def transform(self, rows: np.ndarray) -> np.ndarray:
        return (np.asarray(rows, dtype=np.float32) - self._mean) @ self._axes.T  # type: ignore[no-any-return]


class UMAP:
    """umap-learn's UMAP fitted on the sample (euclidean on unit rows: the cosine order); ``transform`` places new
    rows. Without a ``seed`` it runs on every core (umap-learn is single-threaded with one)."""

    name = "umap"

    def __init__(self, *, n_neighbors: int = 15, seed: int | None = None) -> None:
        if not umap_available():
            raise ConfigError("the UMAP projection needs the [umap] extra: pip install 'chroma-ml[umap]'")
        self.explained: tuple[float, float] = (0.0, 0.0)  # UMAP explains no variance; kept for one header shape
        self._n_neighbors, self._seed = n_neighbors, seed
        self._model: Any = None

    def fit(self, sample: np.ndarray) -> UMAP:
        import umap  # type: ignore[import-untyped]  # the extra, imported when asked for (numba compiles on first use)

        x = np.asarray(sample, dtype=np.float32)
        # Tiny samples: UMAP needs more rows than neighbours and than its spectral initialisation's dimensions.
        neighbors = max(2, min(self._n_neighbors, len(x) - 1))
        init = "spectral" if len(x) > 50 else "random"
        self._model = umap.UMAP(n_components=2, n_neighbors=neighbors, init=init, random_state=self._seed)
        self._model.fit(x)
        return self

    def transform(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.transform(np.asarray(rows, dtype=np.float32)), dtype=np.float32)


def umap_available() -> bool:
    """Whether the ``[umap]`` extra (umap-learn) is installed."""
    return importlib.util.find_spec("umap") is not None


def reducer(method: str, *, seed: int | None = None) -> Reducer:
    """The projection for ``method`` (one of :data:`METHODS`)."""
    if method not in METHODS:
        raise ConfigError(f"projection method {method!r} is unknown; use one of {', '.join(METHODS)}.")
    if method == "umap":
        return UMAP(seed=seed)
    return PCA()  # "auto" too: see the module docstring
