"""SQLiteStore.put reads a batch's first chunk before it takes the write lock (other writers wait for that lock)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chroma_core.engine import SQLiteStore
from chroma_core.errors import BatchFormatError
from chroma_core.records import Records
from tests.chroma_core.engine.test_store import ES, batch


def test_the_first_chunk_is_read_before_the_write_lock_and_the_rest_under_it(tmp_path):
    store = SQLiteStore(tmp_path)
    header, records = batch(10)
    held: list[bool] = []

    def chunks() -> Iterator[Records]:
        for part in (records.subset(range(5)), records.subset(range(5, 10))):
            held.append(store._lock._is_owned())  # type: ignore[attr-defined]
            yield part

    assert store.put(header, chunks(), complete=lambda: True).stored == 10
    assert held == [False, True]
    assert store.get_set(ES.id).training == 10


def test_a_batch_whose_first_chunk_cannot_be_read_stores_nothing(tmp_path):
    store = SQLiteStore(tmp_path)
    header, _ = batch(4)

    def chunks() -> Iterator[Records]:
        raise BatchFormatError("unreadable")
        yield

    with pytest.raises(BatchFormatError):
        store.put(header, chunks(), complete=lambda: True)
    assert store.get_set(ES.id) is None
    _, records = batch(4, batch_id=header.batch_id)
    assert store.put(header, [records], complete=lambda: True).stored == 4  # the batch id is still free


def test_an_empty_batch_is_still_marked(tmp_path):
    store = SQLiteStore(tmp_path)
    header, _ = batch(1)
    result = store.put(header, iter(()), complete=lambda: True)
    assert (result.received, result.stored) == (0, 0)
    assert store.get_set(ES.id).training == 0
