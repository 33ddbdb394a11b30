"""Turning what users pass as an embedding into float32 rows, without importing any ML framework."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt

from chroma_core.errors import DimensionMismatchError, InvalidEmbeddingError

__all__ = ["Matrix", "check_dimension", "decode_base64", "encode_base64", "to_matrix", "to_vector"]

Matrix = npt.NDArray[np.float32]
_F32 = np.dtype("<f4")


def _from_tensor(value: Any) -> Any:
    # torch, without importing it: detach from autograd, move to host, widen bf16/half to float32.
    tensor = value.detach()
    if getattr(tensor.device, "type", "cpu") != "cpu":
        tensor = tensor.cpu()
    if str(tensor.dtype) != "torch.float32":
        tensor = tensor.float()
    return tensor.numpy()


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return np.asarray(_from_tensor(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidEmbeddingError(
            "embedding is raw bytes; pass a numpy array, a torch tensor or a list of numbers "
            "(use chroma_core.vectors.decode_base64 for base64 text)."
        )
    try:
        return np.asarray(value, dtype=np.float64 if isinstance(value, (list, tuple)) else None)
    except (TypeError, ValueError) as exc:
        raise InvalidEmbeddingError(
            f"embedding of type {type(value).__name__} cannot be read as numbers ({exc}); pass a numpy array, "
            "a torch tensor or a list of floats."
        ) from None


def _check_finite(matrix: np.ndarray, first_index: int = 0) -> None:
    """Refuse non-finite values and all-zero rows, naming the first bad row."""
    finite = np.isfinite(matrix)
    if finite.all():
        _check_nonzero(matrix, first_index)
        return
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    row = int(bad_rows[0])
    col = int(np.flatnonzero(~finite[row])[0])
    where = f"row {first_index + row}, " if matrix.shape[0] > 1 or first_index else ""
    raise InvalidEmbeddingError(
        f"embedding has a non-finite value ({matrix[row, col]!r} at {where}position {col}; "
        f"{len(bad_rows)} bad row(s) in all). NaN or infinity usually means the model diverged or an input "
        "was empty; fix or drop those inputs before logging them."
    )


def _check_nonzero(matrix: np.ndarray, first_index: int = 0) -> None:
    zero = ~matrix.any(axis=1)
    if zero.any():
        row = int(np.flatnonzero(zero)[0])
        where = f" (row {first_index + row}; {int(zero.sum())} such row(s) in all)" if matrix.shape[0] > 1 else ""
        raise InvalidEmbeddingError(
            f"embedding is all zeros{where}: it has no direction, so its similarity to anything is undefined. "
            "It usually means an empty input or a layer that was not filled; fix or drop those inputs."
        )


def to_matrix(value: Any, *, batch: bool) -> Matrix:
    """Return a C-contiguous float32 ``(n, d)`` copy of ``value``, checked: finite, and no row all zeros.

    ``batch=False`` expects one vector (1-d, or ``(1, d)``); ``batch=True`` expects ``(n, d)``.
    """
    array = _as_array(value)
    if array.dtype.kind not in "fiu" or array.dtype.kind == "b":
        raise InvalidEmbeddingError(f"embedding has dtype {array.dtype}; it must hold real numbers.")
    if not batch:
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1:
            raise InvalidEmbeddingError(
                f"embedding has shape {array.shape}; one embedding must be 1-d. Pass a list of input_uri values "
                "to log a 2-d batch, or pool token embeddings into one vector first."
            )
        array = array[None, :]
    elif array.ndim != 2:
        raise InvalidEmbeddingError(f"a batch of embeddings must be 2-d (n, dimension), got shape {array.shape}.")
    if array.shape[1] == 0:
        raise InvalidEmbeddingError("embedding is empty (dimension 0).")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(array, dtype=_F32, order="C", copy=True)
    # float64 values beyond float32's range become inf here, and are reported like any other inf.
    _check_finite(out)
    return out


def to_vector(value: Any) -> Matrix:
    """One embedding as a float32 ``(d,)`` copy."""
    row: Matrix = to_matrix(value, batch=False)[0]
    return row


def check_dimension(got: int, expected: int, what: str) -> None:
    if got != expected:
        raise DimensionMismatchError(
            f"{what} has dimension {got}, but this embedding set holds {expected}-dimensional vectors. "
            "Log each model layer as its own embedding_set (e.g. change 'layer' or 'model_version').",
            expected=expected,
            got=got,
        )


def encode_base64(vector: np.ndarray) -> str:
    """Base64 of the little-endian float32 bytes of one vector."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype=_F32).tobytes()).decode("ascii")


def decode_base64(text: str, dimension: int | None = None) -> Matrix:
    """Decode base64 little-endian float32 into a ``(d,)`` vector, with errors that say what was wrong."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEmbeddingError(
            f"embedding is not valid base64 ({exc}); encode the little-endian float32 bytes, e.g. "
            "base64.b64encode(np.asarray(v, dtype='<f4').tobytes())."
        ) from None
    if len(raw) % 4:
        raise InvalidEmbeddingError(
            f"embedding decodes to {len(raw)} bytes, not a whole number of float32 values (4 bytes each)."
        )
    vector = np.frombuffer(raw, dtype=_F32).astype(np.float32)
    if dimension is not None and vector.shape[0] != dimension:
        check_dimension(vector.shape[0], dimension, "embedding")
    if not vector.size:
        raise InvalidEmbeddingError("embedding is empty (dimension 0).")
    _check_finite(vector[None, :])
    return vector
