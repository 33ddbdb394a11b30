from __future__ import annotations

import numpy as np
import pytest

from chroma_core.engine import sqlite_files as files
from chroma_core.errors import StorageError


def write(path, x: np.ndarray, count: int = 0) -> None:
    with files.appending(path, count, x.shape[1]) as append:
        append(x)


def test_row_maps_keep_one_map_per_file_and_follow_new_rows_and_replaced_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    path = tmp_path / "sets" / "s" / "training.f32"
    write(path, x[:100])
    maps = files.RowMaps()
    rows = np.array([3, 99, 0])
    assert np.array_equal(maps.read(("s", "training"), path, 8, 100, rows), x[rows])
    first = maps._maps[("s", "training")][3]
    assert np.array_equal(maps.read(("s", "training"), path, 8, 100, np.array([5])), x[[5]])
    assert maps._maps[("s", "training")][3] is first  # the same map: none opened per call
    write(path, x[100:200], count=100)
    assert np.array_equal(maps.read(("s", "training"), path, 8, 200, np.array([150, 2])), x[[150, 2]])
    path.unlink()  # the set deleted and made again under the same path: another file
    y = -x
    write(path, y[:50])
    assert np.array_equal(maps.read(("s", "training"), path, 8, 50, np.array([7])), y[[7]])
    assert maps.read(("s", "training"), path, 8, 50, np.array([], dtype=np.int64)).shape == (0, 8)
    with pytest.raises(IndexError):
        maps.read(("s", "training"), path, 8, 50, np.array([50]))
    with pytest.raises(StorageError, match="fewer vectors than the database records"):
        maps.read(("s", "training"), path, 8, 60, np.array([1]))
    maps.forget("s")
    assert not maps._maps
