from __future__ import annotations

import threading

import numpy as np
import pytest

import chroma
from chroma_core import buffer
from chroma_core.errors import InvalidEmbeddingError
from tests.conftest import SET

DIM = 4


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 5 rows of 4 floats, so that a few rows span several blocks."""
    monkeypatch.setattr(buffer, "BLOCK_BYTES", 5 * 4 * DIM)


def rows(start: int, count: int) -> np.ndarray:
    x = np.zeros((count, DIM), np.float32)
    x[:, 0] = np.arange(start, start + count) + 1
    x[:, 1] = 0.5
    return x


def session() -> chroma.TrainingSession:
    return chroma.TrainingSession(embedding_set=SET)


def test_rows_across_blocks_come_back_in_order_from_the_fast_and_the_batch_path(small_blocks):
    s = session()
    expected = rows(0, 23)
    s.log(input_uri="/0", embedding=expected[0], inferences={"i": 0}, label="a", preview="p0")
    for i in range(1, 8):  # the fast path, from the second row on
        s.log(input_uri=f"/{i}", embedding=expected[i], inferences={"i": i}, label="a", preview=f"p{i}")
    # A batch that fills the current block and needs more than one block more, then single rows again.
    s.log(
        input_uri=[f"/{i}" for i in range(8, 20)], embedding=expected[8:20], inferences=[{"i": i} for i in range(8, 20)]
    )
    for i in range(20, 23):
        s.log(input_uri=f"/{i}", embedding=expected[i].tolist(), inferences={"i": i})  # the general path
    buf = s._default
    assert buf is not None and len(buf.blocks) >= 2 and buf.n == 23
    np.testing.assert_array_equal(buf.matrix, expected)

    header, records = buf.take("training")
    np.testing.assert_array_equal(records.vectors, expected)
    assert records.vectors.flags.c_contiguous and records.vectors.shape == (23, DIM)
    assert records.input_uris == [f"/{i}" for i in range(23)]
    assert records.inferences == [{"i": i} for i in range(23)]
    assert records.labels == ["a"] * 8 + [None] * 15
    assert records.previews == [f"p{i}" for i in range(8)] + [None] * 15
    assert len(records.times) == 23 and header.dimension == DIM
    assert buf.n == 0 and buf.capacity == 0 and buf.meta == []


def test_a_fast_path_row_equals_the_general_path_row():
    vec = np.array([0.25, -1.5, 3.0, 1e-3], np.float32)
    fast, general = session(), session()
    for s in (fast, general):
        s.log(input_uri="/warm", embedding=np.ones(DIM, np.float32))  # makes the default buffer
    fast.log(input_uri="/x", embedding=vec, inferences={"s": 1}, label="cat", preview="a  b\nc")
    general.log(
        input_uri=["/x"],
        embedding=vec[None, :].astype(np.float64),
        inferences=[{"s": 1}],
        label=["cat"],
        preview=["a  b\nc"],
    )
    (_, a), (_, b) = fast._default.take("training"), general._default.take("training")
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert (a.input_uris, a.inferences, a.labels, a.previews) == (b.input_uris, b.inferences, b.labels, b.previews)


def test_after_take_the_first_block_is_reused_and_the_taken_rows_stay_as_they_were(small_blocks):
    s = session()
    for i in range(12):
        s.log(input_uri=f"/{i}", embedding=rows(i, 1)[0])
    buf = s._default
    first = buf.blocks[0]
    _, records = buf.take("training")
    assert buf.spare is first
    for i in range(3):
        s.log(input_uri=f"/again{i}", embedding=np.full(DIM, 9.0, np.float32))
    assert buf.block is first and buf.spare is None
    np.testing.assert_array_equal(records.vectors, rows(0, 12))  # a copy: the reused block's new rows don't leak


def test_a_single_block_is_copied_out_and_kept():
    s = session()
    for i in range(3):
        s.log(input_uri=f"/{i}", embedding=rows(i, 1)[0])
    buf = s._default
    block = buf.block
    _, records = buf.take("training")
    assert records.vectors.base is not block and len(records.vectors) == 3
    assert buf.spare is block


def test_a_batch_larger_than_a_block_gets_its_own_block_which_is_not_kept(small_blocks):
    s = session()
    s.log(input_uri=[f"/{i}" for i in range(12)], embedding=rows(0, 12))
    buf = s._default
    block = buf.block
    assert len(block) == 12 and not buf.blocks
    _, records = buf.take("training")
    np.testing.assert_array_equal(records.vectors, rows(0, 12))
    assert records.vectors.base is block  # handed over, not copied
    assert buf.spare is None


def test_a_0d_array_after_a_refused_first_call_is_refused_the_same_way():
    s = session()
    for _ in range(2):  # the second call once took the fast path and failed an assertion
        with pytest.raises(InvalidEmbeddingError, match="1-d"):
            s.log(input_uri="/a", embedding=np.array(1.0, np.float32))
    assert s.pending == 0


def test_threads_sharing_a_session_never_mis_pair_rows_and_uris(small_blocks):
    s = session()
    s.log(input_uri="/warm", embedding=np.full(DIM, -1.0, np.float32))
    per_thread, threads = 300, 4

    def work(t: int) -> None:
        vec = np.zeros(DIM, np.float32)
        for i in range(per_thread):
            vec[0] = t * per_thread + i + 1
            vec[1] = 1.0
            s.log(input_uri=f"/{t * per_thread + i + 1}", embedding=vec)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    _, records = s._default.take("training")
    assert len(records) == 1 + per_thread * threads
    for uri, vec in zip(records.input_uris[1:], records.vectors[1:], strict=True):
        assert uri == f"/{int(vec[0])}"
