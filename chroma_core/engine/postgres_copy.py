"""Vectors in and out of PostgreSQL in bulk: ``COPY ... (FORMAT BINARY)``, parsed and built with numpy.

A row of ``COPY (SELECT [row,] embedding ...) TO STDOUT (FORMAT BINARY)`` has a fixed size for a set (its field
count, then ``row`` as a length and an int8, then ``embedding`` as a length, pgvector's dimension and flags
int16s and the big-endian float4s), so a whole read is one ``numpy.frombuffer`` with a structured dtype rather
than a Python object per row: reading a set's 200k vectors costs what copying the bytes does.
"""

from __future__ import annotations

import numpy as np

from chroma_core.errors import StorageError
from chroma_core.vectors import Matrix

__all__ = ["parse_vectors"]

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # flags and header-extension length, both int32
_TRAILER = 2  # int16 -1


def _dtype(dimension: int, with_rows: bool) -> np.dtype:
    fields: list[tuple[str, str] | tuple[str, str, tuple[int, ...]]] = [("fields", ">i2")]
    if with_rows:
        fields += [("row_len", ">i4"), ("row", ">i8")]
    fields += [("vec_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dimension,))]
    return np.dtype(fields)


def parse_vectors(data: bytes, dimension: int, *, with_rows: bool = False) -> tuple[np.ndarray | None, Matrix]:
    """(rows or None, float32 vectors) from the bytes of a binary ``COPY ... TO STDOUT``."""
    if not data.startswith(_SIGNATURE):
        raise StorageError("the database sent a COPY stream that is not binary COPY; is this PostgreSQL?")
    body = memoryview(data)[_HEADER : len(data) - _TRAILER]
    dtype = _dtype(dimension, with_rows)
    if len(body) % dtype.itemsize:
        raise StorageError(
            f"stored vectors do not have dimension {dimension} (a COPY row is not {dtype.itemsize} bytes); the "
            "database was modified outside Chroma."
        )
    table = np.frombuffer(body, dtype=dtype)
    if len(table) and not (table["dim"] == dimension).all():
        raise StorageError(f"stored vectors do not all have dimension {dimension}; the database was modified.")
    vectors = table["values"].astype(np.float32)  # big-endian to native, and a writable copy
    rows = table["row"].astype(np.int64) if with_rows else None
    return rows, vectors.reshape(len(table), dimension)
