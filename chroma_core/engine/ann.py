"""The approximate index for large sets: usearch HNSW, cosine, in reduced precision, persisted beside the vectors.

A new index is bfloat16 where usearch has SIMD kernels for it on this CPU, else float16 (:func:`default_dtype`); a
store opened with the default ``index_dtype="auto"`` loads an index saved before in the precision it was saved
with, so a change of default never rebuilds one.

Why usearch (see docs/index.md for the measured comparison with faiss-cpu and hnswlib): it stores vectors in
float16 or int8 natively (float16 halves the memory at recall@10 of 0.999 here), takes incremental adds without a
rebuild, and saves/loads one file. Scores are never taken from the reduced-precision index: the engine re-ranks the
candidates it returns with the exact float32 vectors.

The index file sits beside the vectors it indexes, with a JSON sidecar recording how many rows it covers, its
SHA-256 and whatever identifies the data it was built from (the SQLite store passes its set's creation time). On
open, a file whose checksum or identity does not match (corrupt, truncated, edited, or left from a deleted set) is
discarded and rebuilt from the stored vectors, with a warning: a damaged index can cost time, never a wrong answer.
Rows added since the file was saved are added on open.

A float16, bfloat16 or float32 index is saved without its vectors: usearch writes ``[rows, bytes per row][vectors]
[head][graph]``, and the vectors are exactly the store's float32 rows, normalised and cast (numpy's cast gives
usearch's bits; :func:`bf16_bits` rounds to nearest even as usearch does), so the file keeps the head and graph only
(15 MB rather than 92 MB at 100k x 384) and the vectors are put back from the store's file on open. The sidecar's
checksum is of the whole serialisation, so a put-back index that differs by one bit from the one saved is rebuilt,
never used. An int8 index (whose codes cannot be recomputed here) is saved whole.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chroma_core.atomic import atomic_write
from chroma_core.errors import StorageError
from chroma_core.logs import logger
from chroma_core.vectors import Matrix

__all__ = ["DTYPES", "ANNIndex", "available", "bf16_bits", "check_memory", "default_dtype", "stored_dtype"]

_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "i8": 1}
DTYPES = tuple(_BYTES)
_PROGRESS_ROWS = 20_000


def _search_width(n: int) -> int:
    return 64 if n <= 250_000 else 128


@functools.cache
def default_dtype() -> str:
    """The precision of a new index: bfloat16 where usearch has SIMD kernels for it on this CPU, else float16.

    bfloat16 keeps float32's exponent and 8 bits of mantissa: with native kernels (avx512_bf16 here) a 100k x 384
    build took 36% less CPU than float16 and a re-ranked search 17-36% less time, at the same re-ranked recall, and
    at 1M x 384 the engine's width met recall 0.95 at p50 < 1 ms, which float16 did not (docs/index.md). Without
    SIMD kernels usearch would compute bfloat16 in scalar code, which is not worth it against float16's kernels.
    """
    from usearch.index import Index

    try:
        kernel = Index(ndim=8, metric="cos", dtype="bf16").hardware_acceleration
    except Exception:  # a usearch without bf16
        return "f16"
    return "f16" if kernel in ("serial", "", None) else "bf16"


def stored_dtype(path: Path) -> str | None:
    """The precision recorded beside the index file ``path`` (None: no readable sidecar)."""
    try:
        dtype = json.loads(path.with_suffix(".json").read_text()).get("dtype")
    except (OSError, ValueError, AttributeError):
        return None
    return dtype if dtype in _BYTES else None


def available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(n: int, dim: int, dtype: str, *, what: str) -> None:
    """Refuse, with the figures, an index that cannot fit in the memory this machine has free."""
    need = int(n * (dim * _BYTES[dtype] + 16 * 2 * 8) * 1.2)  # vectors + HNSW links (M=16, two levels' worth)
    free = _mem_available()
    if free is not None and need > free:
        raise StorageError(
            f"{what}: an index of {n:,} x {dim}-d vectors in {dtype} needs about {need / 2**30:.1f} GiB, but only "
            f"{free / 2**30:.1f} GiB of memory is available. Use a smaller precision (index_dtype='f16', 'bf16' or "
            "'i8'), or a machine with more memory."
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bf16_bits(rows: Matrix) -> np.ndarray:
    """float32 rows as bfloat16 bit patterns (uint16), rounded to nearest even as usearch rounds them."""
    bits = np.ascontiguousarray(rows, np.float32).view(np.uint32)
    # Finite values cannot overflow 32 bits here (the largest, 0xFF7FFFFF, plus 0x8000 still fits).
    rounded: np.ndarray = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    return rounded


#: Precisions whose stored vectors are the store's normalised float32 rows cast: saved without them. Each gives
#: the numpy type of its bits in usearch's file and the cast that makes them.
_EXTERNAL: dict[str, tuple[type[np.generic], Callable[[Matrix], np.ndarray]]] = {
    "f32": (np.float32, lambda rows: np.asarray(rows, np.float32)),
    "f16": (np.float16, lambda rows: np.asarray(rows, np.float16)),
    "bf16": (np.uint16, bf16_bits),
}
_MATRIX_HEAD = struct.Struct("<II")  # usearch's (rows, bytes per row) before its vectors (32-bit dimensions)
_GRAPH_MAGIC = b"chroma-usearch-graph-v1\n"
_STEP = 4096  # rows per step when vectors are matched or put back: a few MB at a time


def _fingerprints(rows: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of each row's bytes (a random linear hash): equal rows, equal fingerprints."""
    words = rows.view(np.uint16 if rows.dtype.itemsize == 2 else np.uint32).astype(np.uint64)
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, size=words.shape[1], dtype=np.uint64) * 2 + 1
    with np.errstate(over="ignore"):
        sums: np.ndarray = (words * weights).sum(axis=1, dtype=np.uint64)  # wraps modulo 2**64, as meant
    return sums


def _match(slots: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For fingerprints of usearch's slots and of the rows, the row each slot holds (equal rows interchangeable)."""
    by_slot, by_row = np.argsort(slots, kind="stable"), np.argsort(rows, kind="stable")
    if not np.array_equal(slots[by_slot], rows[by_row]):
        raise StorageError("usearch's saved vectors are not the index's rows: cannot save it without them")
    out = np.empty(len(slots), dtype=np.int64)
    out[by_slot] = by_row
    return out


def _with_vectors(path: Path, rows: int, dim: int, rows_at: Callable[[np.ndarray], Matrix], dtype: str) -> bytearray:
    """The whole usearch serialisation of an index saved by ``ANNIndex._save_graph``: its ``rows`` vectors, read with
    ``rows_at(row numbers)`` (normalised float32), cast and put back in its slots' order before its head and graph."""
    cast_to, cast_rows = _EXTERNAL[dtype]
    row_bytes = dim * np.dtype(cast_to).itemsize
    with open(path, "rb") as f:
        if f.read(len(_GRAPH_MAGIC)) != _GRAPH_MAGIC:
            raise ValueError("not an index saved without its vectors")
        (count,) = struct.unpack("<Q", f.read(8))
        if count != rows:
            raise ValueError(f"the index holds {count} rows, the store {rows}")
        order = np.fromfile(f, dtype="<u8", count=rows).astype(np.int64)
        if len(order) != rows or (rows and (order.min() < 0 or order.max() >= rows)):
            raise ValueError("its slot table is damaged")
        graph = path.stat().st_size - f.tell()
        buffer = bytearray(_MATRIX_HEAD.size + rows * row_bytes + graph)
        _MATRIX_HEAD.pack_into(buffer, 0, rows, row_bytes)
        cast = np.frombuffer(buffer, dtype=cast_to, count=rows * dim, offset=_MATRIX_HEAD.size).reshape(rows, dim)
        for start in range(0, rows, _STEP):  # in steps: no full-size copy of the vectors besides the buffer
            cast[start : start + _STEP] = cast_rows(rows_at(order[start : start + _STEP]))
        if f.readinto(memoryview(buffer)[_MATRIX_HEAD.size + rows * row_bytes :]) != graph:
            raise ValueError("the index file changed while it was read")
    return buffer


class ANNIndex:
    """usearch HNSW over normalised vectors; rows are numbered in insertion order, like the store's."""

    def __init__(self, dimension: int, dtype: str = "f16", *, expansion_search: int = 64, threads: int = 0) -> None:
        """``threads``: cores an add may use (0: all; a background build passes :func:`sqlite_index.build_threads`)."""
        from usearch.index import Index

        if dtype not in _BYTES:
            raise ValueError(f"index dtype must be one of {', '.join(_BYTES)}, not {dtype!r}")
        self.dimension = dimension
        self.dtype = dtype
        self._index = Index(
            ndim=dimension,
            metric="cos",
            dtype=dtype,
            connectivity=16,
            expansion_add=128,
            expansion_search=expansion_search,
        )
        self._saved = 0
        self._threads = threads

    def __len__(self) -> int:
        return len(self._index)

    def add(self, vectors: Matrix) -> None:
        if len(vectors):
            start = len(self._index)
            self._index.add(
                np.arange(start, start + len(vectors)), np.ascontiguousarray(vectors, np.float32), threads=self._threads
            )

    def search(self, queries: Matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        result = self._index.search(np.ascontiguousarray(queries, np.float32), k, threads=0)
        keys = np.asarray(result.keys, dtype=np.int64).reshape(len(queries), -1)
        sims = (1.0 - np.asarray(result.distances, dtype=np.float32)).reshape(len(queries), -1)
        return sims, keys

    # ---- persistence --------------------------------------------------------------------------------------------

    def save(self, path: Path, identity: dict[str, Any] | None = None) -> None:
        """Write the index and its sidecar atomically (temp file, fsync, rename); ``identity`` goes in the sidecar."""
        self.commit(self.stage(path), path, identity)

    def stage(self, path: Path) -> tuple[Path, dict[str, Any]]:
        """Write the index to a temporary file beside ``path``, not yet in its place: the slow part of a save, which
        a store can do before it takes its write lock. Returns the file and the sidecar's fields for :meth:`commit`."""
        tmp = path.with_name(path.name + f".tmp-{os.getpid()}-{id(self)}")  # two stores may save one set at once
        self._index.save(str(tmp))
        meta: dict[str, Any] = {"count": len(self), "dtype": self.dtype, "dimension": self.dimension}
        try:
            if self.dtype in _EXTERNAL:
                try:
                    graph, meta["sha256"] = self._save_graph(tmp, path)
                    meta["vectors"] = "store"
                    return graph, meta
                except StorageError as exc:  # not expected; the whole file still serves
                    logger.warning("saving the index %s with its vectors (%s)", path, exc)
            meta["sha256"] = _sha256(tmp)
            return tmp, meta
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if "vectors" in meta:
                tmp.unlink(missing_ok=True)

    def commit(self, staged: tuple[Path, dict[str, Any]], path: Path, identity: dict[str, Any] | None) -> None:
        """Put a staged index (:meth:`stage`) in its place, then its sidecar with ``identity`` in it."""
        file, meta = staged
        os.replace(file, path)
        with atomic_write(path.with_suffix(".json")) as f:
            f.write(json.dumps({**meta, **(identity or {})}).encode())
        self._saved = int(meta["count"])

    def _rows(self, keys: np.ndarray) -> np.ndarray:
        """The index's own (cast) vectors of rows ``keys``."""
        cast_rows = _EXTERNAL[self.dtype][1]
        # usearch hands bfloat16 out as float32 (exactly: bf16 is float32's top half), which casts back bit for bit.
        got = self._index.get(keys, dtype="f32" if self.dtype == "bf16" else self.dtype)
        return np.ascontiguousarray(cast_rows(np.asarray(got).reshape(len(keys), self.dimension)))

    def _save_graph(self, full: Path, path: Path) -> tuple[Path, str]:
        """Write ``full`` (usearch's file) beside ``path`` without its vectors, with the row each slot holds (module
        docstring); return that file and the SHA-256 of the whole of ``full``, which a put-back index must match."""
        rows, dim, cast_to = len(self), self.dimension, _EXTERNAL[self.dtype][0]
        with open(full, "rb") as f:
            if _MATRIX_HEAD.unpack(f.read(_MATRIX_HEAD.size)) != (rows, dim * np.dtype(cast_to).itemsize):
                raise StorageError(f"usearch wrote an index layout this version does not know ({full})")
            # Which row each slot holds, in steps (no full-size copy of the vectors): fingerprints matched, then
            # every slot compared with its row, so that a fingerprint collision cannot pass unseen.
            vectors_at = f.tell()
            slots = np.empty(rows, dtype=np.uint64)
            by_row = np.empty(rows, dtype=np.uint64)
            for start in range(0, rows, _STEP):
                stop = min(rows, start + _STEP)
                slots[start:stop] = _fingerprints(
                    np.fromfile(f, dtype=cast_to, count=(stop - start) * dim).reshape(-1, dim)
                )
                by_row[start:stop] = _fingerprints(self._rows(np.arange(start, stop)))
            order = _match(slots, by_row)
            f.seek(vectors_at)
            for start in range(0, rows, _STEP):
                stop = min(rows, start + _STEP)
                section = np.fromfile(f, dtype=cast_to, count=(stop - start) * dim).reshape(-1, dim)
                if not np.array_equal(section.view(np.uint8), self._rows(order[start:stop]).view(np.uint8)):
                    raise StorageError("usearch's saved vectors are not the index's rows: cannot save it without them")
            tmp = path.with_name(path.name + f".graph-{os.getpid()}-{id(self)}")
            with open(tmp, "wb") as out:
                out.write(_GRAPH_MAGIC + struct.pack("<Q", rows) + order.astype("<u8").tobytes())
                shutil.copyfileobj(f, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        return tmp, _sha256(full)

    def grown(self, path: Path, fraction: float = 0.1) -> bool:
        """Whether the index has grown by more than ``fraction`` since it was saved (or was never saved)."""
        return len(self) - self._saved > max(1, fraction * max(self._saved, 1)) or not path.exists()

    @classmethod
    def open(
        cls,
        path: Path,
        dimension: int,
        dtype: str,
        count: int,
        vectors: Callable[[int], Matrix],
        *,
        identity: dict[str, Any] | None = None,
        threads: int = 0,
        progress: Callable[[int, int], None] | None = None,
        rows_at: Callable[[np.ndarray], Matrix] | None = None,
    ) -> ANNIndex:
        """Load ``path`` if it is intact and matches (``identity`` too); add rows it lacks; else rebuild from
        ``vectors(start)``. ``progress(done, total)`` is called as rows are added (a build takes minutes at 1M).
        ``rows_at(rows)``: the same normalised vectors by row number, to put an index's vectors back a step at a
        time (without it, ``vectors(0)`` is read whole)."""
        index = cls(dimension, dtype, threads=threads)
        pending: Matrix | None = None  # rows read from the store and not yet in the index
        every: Matrix | None = None  # all of them, when the index's vectors were put back from the store
        meta_path = path.with_suffix(".json")
        if path.exists() and meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
                if (meta.get("dimension"), meta.get("dtype")) != (dimension, dtype) or meta.get("count", 0) > count:
                    raise ValueError("the index does not match the stored set")
                if any(meta.get(key) != value for key, value in (identity or {}).items()):
                    raise ValueError("it was built for other data (a deleted set)")
                if meta.get("vectors") == "store" and dtype in _EXTERNAL:
                    if rows_at is None:
                        every = vectors(0)
                        rows_at = every.__getitem__
                    whole = _with_vectors(path, meta["count"], dimension, rows_at, dtype)
                    if hashlib.sha256(whole).hexdigest() != meta.get("sha256"):
                        raise ValueError("checksum mismatch (index file or stored vectors)")
                    index._index.load(whole)
                    del whole
                    pending = None if every is None else every[meta["count"] :]
                elif meta.get("vectors") is None and _sha256(path) == meta.get("sha256"):
                    index._index.load(str(path))  # a whole file, as int8 indexes and older versions save it
                else:
                    raise ValueError("checksum mismatch")
                index._index.expansion_search = _search_width(len(index._index))  # type: ignore[misc]
                if len(index) != meta["count"]:
                    raise ValueError("row count mismatch")
                index._saved = len(index)
            except Exception as exc:
                logger.warning("the index %s is unusable (%s); rebuilding it from the stored vectors", path, exc)
                index = cls(dimension, dtype, threads=threads)
                pending = every  # read already: the rebuild needs every row
        check_memory(count, dimension, dtype, what=f"index {path.parent.name}")
        if len(index) < count:
            if pending is None or len(index) + len(pending) != count:
                pending = vectors(len(index))
            # In steps, so that a long build can say how far it got; usearch adds a step as fast as the whole.
            for start in range(0, len(pending), _PROGRESS_ROWS):
                index.add(pending[start : start + _PROGRESS_ROWS])
                if progress is not None:
                    progress(len(index), count)
        return index
