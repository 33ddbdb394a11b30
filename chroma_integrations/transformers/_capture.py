"""Hidden states captured in one forward pass, pooled per row on the model's device, merged per input."""

from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np

from chroma_core.errors import ChromaError

__all__ = ["Capture", "State", "merge", "pooled_rows", "row_ends", "rows_of", "torch"]

try:
    import torch
except ImportError as exc:  # pragma: no cover - the [transformers] extra installs torch
    raise ImportError("chroma_integrations.transformers needs torch: pip install 'chroma-ml[transformers]'") from exc


class Capture:
    """What the hook saw during one call of the pipeline's ``forward``."""

    __slots__ = ("calls", "first_only", "hidden")

    def __init__(self, first_only: bool) -> None:
        self.hidden: Any = None
        self.first_only = first_only  # generation: the prefill pass only, never a decoding step
        self.calls = 0


class State(threading.local):
    """Per thread: whether the wrapper's own call is running, and the vectors waiting for their outputs."""

    def __init__(self) -> None:
        self.active = 0
        self.capture: Capture | None = None
        # One entry per input: its vector, None where capture failed, or (boxes=True) its BoxStates.
        self.vectors: collections.deque[Any] = collections.deque()
        self.chunk_sum: Any = None  # running pooled state of an input split over several chunks
        self.chunk_count: Any = None


def pooled_rows(hidden: Any, mask: Any, pooling: str) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts) per row, computed on ``hidden``'s device; only these small arrays go to the CPU.

    ``hidden`` is ``(rows, dim)`` (already one vector per row) or ``(rows, tokens, dim)``; ``mask`` is
    ``(rows, tokens)`` or None (every position counts).
    """
    if hidden is None:
        raise ChromaError("the hooked layer did not run during the pipeline's forward pass")
    with torch.no_grad():
        if hidden.dim() == 2:
            return hidden.float().cpu().numpy(), np.ones((hidden.shape[0], 1), dtype=np.float32)
        if hidden.dim() != 3:
            raise ChromaError(f"cannot pool hidden states of shape {tuple(hidden.shape)}")
        if mask is None or mask.dim() != 2 or tuple(mask.shape) != tuple(hidden.shape[:2]):
            mask = torch.ones(hidden.shape[:2], device=hidden.device)
        mask = mask.to(hidden.device, dtype=torch.float32).unsqueeze(-1)
        h = hidden.float()
        ones = torch.ones(h.shape[0], 1, device=h.device)
        if pooling == "cls":
            sums_t, counts_t = h[:, 0], ones
        elif pooling == "last":
            # The last position the mask keeps: right padding or left padding (generation) alike.
            positions = torch.arange(h.shape[1], device=h.device, dtype=torch.float32).view(1, -1, 1)
            last = (mask * (positions + 1)).argmax(dim=1).squeeze(-1)
            sums_t, counts_t = h[torch.arange(h.shape[0], device=h.device), last], ones
        elif pooling == "max":
            sums_t, counts_t = h.masked_fill(mask == 0, float("-inf")).amax(dim=1), ones
        else:
            sums_t, counts_t = (h * mask).sum(dim=1), mask.sum(dim=1)
        return sums_t.cpu().numpy(), counts_t.cpu().numpy()


def row_ends(model_inputs: Any, rows: int) -> list[bool]:
    """Per row of this forward: does it end an input? (Chunked pipelines split one input over rows.)"""
    is_last = model_inputs.get("is_last")
    if is_last is None:
        return [True] * rows
    if isinstance(is_last, bool):
        return [is_last] * rows
    return [bool(x) for x in (is_last.tolist() if hasattr(is_last, "tolist") else is_last)]


def rows_of(model_inputs: Any) -> int:
    for key in ("input_ids", "pixel_values", "input_values", "input_features", "inputs_embeds"):
        value = model_inputs.get(key)
        if value is not None and hasattr(value, "shape"):
            return int(value.shape[0])
    return 1


def merge(state: State, sums: np.ndarray, counts: np.ndarray, ends: list[bool], pooling: str) -> None:
    """Queue one vector per *input* this forward finishes, merging the rows (chunks) of one input."""
    for i, end in enumerate(ends):
        if state.chunk_sum is None:
            state.chunk_sum, state.chunk_count = sums[i].copy(), counts[i].copy()
        elif pooling == "max":
            state.chunk_sum = np.maximum(state.chunk_sum, sums[i])
        elif pooling == "mean":
            state.chunk_sum += sums[i]
            state.chunk_count += counts[i]
        elif pooling == "last":
            state.chunk_sum, state.chunk_count = sums[i].copy(), counts[i].copy()
        # cls: keep the first chunk's first token
        if end:
            state.vectors.append((state.chunk_sum / np.maximum(state.chunk_count, 1e-9)).astype(np.float32))
            state.chunk_sum = state.chunk_count = None
