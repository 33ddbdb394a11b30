"""``ChromaSentenceTransformer(model)`` (or ``ChromaPipeline(model)``): log the vectors ``encode`` returns.

>>> from sentence_transformers import SentenceTransformer                      # doctest: +SKIP
>>> model = ChromaPipeline(SentenceTransformer("all-MiniLM-L6-v2"))              # doctest: +SKIP
>>> vectors = model.encode(["a cat on a mat", "a dog"], batch_size=32)          # doctest: +SKIP
>>> model.save()                                                                 # doctest: +SKIP

``encode`` (and ``encode_query``/``encode_document`` where the installed sentence-transformers has them) is called
once with the caller's arguments and its result returned as it is (a numpy array, a tensor, a list of tensors, one
vector for one string). The very vectors it returns (after the model's own pooling and normalisation, and any
``normalize_embeddings``, ``truncate_dim`` or ``precision`` the call asked for) are logged, as float32, one per
input. Calls for something other than sentence embeddings (``output_value="token_embeddings"``) are passed through
and log nothing. The model is never run a second time; an error inside Chroma is logged and never reaches the
caller.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from chroma_core.errors import ChromaError
from chroma_core.guard import capture_internal_exceptions
from chroma_core.logs import logger
from chroma_core.sessions import QuerySession, TrainingSession
from chroma_core.types import QueryResult
from chroma_integrations.transformers._capture import torch
from chroma_integrations.transformers._common import (
    default_input_uri,
    default_preview,
    open_session,
    save_training,
)
from chroma_integrations.transformers.pipeline import model_name, model_version

__all__ = ["ChromaSentenceTransformer"]


class ChromaSentenceTransformer:
    """Wraps a ``SentenceTransformer``; see the module docstring. The options are ChromaPipeline's."""

    def __init__(
        self,
        model: Any,
        *,
        mode: Literal["training", "query"] = "training",
        session: TrainingSession | QuerySession | None = None,
        embedding_set: dict[str, Any] | None = None,
        input_uri: Callable[[Any], str] | None = None,
        preview: bool | Callable[[Any], str | None] = True,
        on_result: Callable[[Any, Any, QueryResult | None], None] | None = None,
        return_results: bool = False,
        max_results: int = 1000,
        **session_kwargs: Any,
    ) -> None:
        self.model = model
        self.mode = mode
        self.return_results = return_results
        self.on_result = on_result
        self._uri = input_uri or default_input_uri
        self._preview = default_preview if preview is True else (preview if callable(preview) else None)
        self.embedding_set = embedding_set or self._derive_set()
        self.session = open_session(mode, session, self.embedding_set, session_kwargs)
        self.results: collections.deque[tuple[str, QueryResult | None]] = collections.deque(maxlen=max_results)
        self._warned_output = False

    def _derive_set(self) -> dict[str, Any]:
        first = self.model[0] if len(self.model) else None
        inner = getattr(first, "auto_model", None)
        config = getattr(inner, "config", None)
        card = getattr(self.model, "model_card_data", None)
        name = getattr(card, "base_model", None) or (model_name(config, inner) if config is not None else None)
        out: dict[str, Any] = {
            "model": str(name or type(self.model).__name__),
            "layer": "sentence_embedding",
            "pooling": self._pooling_name(),
            "normalize": any(type(m).__name__ == "Normalize" for m in self.model),
            "task": "sentence-embedding",
        }
        if getattr(self.model, "truncate_dim", None):
            out["truncate_dim"] = int(self.model.truncate_dim)
        if config is not None:
            out.update(model_version(config, inner))
        return out

    def _pooling_name(self) -> str:
        for module in self.model:
            get = getattr(module, "get_pooling_mode_str", None)
            if callable(get):
                return str(get())
            mode = getattr(module, "pooling_mode", None)
            if isinstance(mode, str):
                return mode
        return "model"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def save(self, **kwargs: Any) -> Any:
        """Save the training session (training mode)."""
        return save_training(self.session, kwargs)

    def close(self) -> None:
        """Nothing to undo: the model is never patched. Present so both wrappers close alike."""

    # ---- calls ----------------------------------------------------------------------------------------------------

    def encode(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """``model.encode(...)``, unchanged; its sentence embeddings are logged."""
        return self._call(self.model.encode, inputs, args, kwargs)

    def encode_query(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """``model.encode_query(...)`` (sentence-transformers 5 and later), unchanged; its vectors are logged."""
        return self._call(self.model.encode_query, inputs, args, kwargs)

    def encode_document(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """``model.encode_document(...)`` (sentence-transformers 5 and later), unchanged; its vectors are logged."""
        return self._call(self.model.encode_document, inputs, args, kwargs)

    def _call(self, encode: Callable[..., Any], inputs: Any, args: Any, kwargs: Any) -> Any:
        output = encode(inputs, *args, **kwargs)  # runs once; the caller's errors pass through untouched
        single = isinstance(inputs, str) or not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        results: list[QueryResult | None] = [None] * len(items)
        if kwargs.get("output_value", "sentence_embedding") != "sentence_embedding":
            if not self._warned_output:
                self._warned_output = True
                logger.info("encode(output_value=%r) logs nothing", kwargs.get("output_value"))
        elif items:
            with capture_internal_exceptions("logging sentence embeddings"):
                results = self._log(items, _matrix(output, len(items)))
        if not self.return_results:
            return output
        return (output, results[0]) if single else (output, results)

    def _log(self, items: list[Any], matrix: np.ndarray) -> list[QueryResult | None]:
        uris = [self._uri(item) for item in items]
        previews = [self._preview(item) for item in items] if self._preview is not None else None
        if isinstance(self.session, TrainingSession):
            self.session.log(input_uri=uris, embedding=matrix, preview=previews)
            return [None] * len(items)
        found = list(self.session.log(input_uri=uris, embedding=matrix, preview=previews))
        self.results.extend(zip(uris, found, strict=True))
        if self.on_result is not None:
            for item, row, result in zip(items, matrix, found, strict=True):
                with capture_internal_exceptions("the on_result callback"):
                    self.on_result(item, row, result)
        return list(found)


def _matrix(output: Any, n: int) -> np.ndarray:
    """``encode``'s result as an ``(n, dim)`` float32 array: one copy to the CPU for a tensor."""
    if isinstance(output, torch.Tensor):
        array = output.detach().float().cpu().numpy()
    elif isinstance(output, (list, tuple)) and output and isinstance(output[0], torch.Tensor):
        array = torch.stack([t.detach() for t in output]).float().cpu().numpy()
    else:
        array = np.asarray(output, dtype=np.float32)
    array = array.reshape(n, -1) if array.ndim == 1 and n == 1 else array
    if array.ndim != 2 or array.shape[0] != n:
        raise ChromaError(f"encode returned shape {array.shape} for {n} inputs; expected one vector per input")
    return np.ascontiguousarray(array, dtype=np.float32)
