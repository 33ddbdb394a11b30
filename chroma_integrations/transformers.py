"""``ChromaPipeline(pipe)``: log the embedding of every input a Hugging Face pipeline processes.

The embedding is captured inside the pipeline's own forward pass: a forward hook on the chosen layer keeps its
hidden states, and a thin wrapper around the pipeline's ``forward`` pools them (on the model's device) with the
batch's attention mask, so only the pooled vectors are copied to the CPU. The model never runs twice.

>>> from transformers import pipeline                                           # doctest: +SKIP
>>> pipe = ChromaPipeline(pipeline("text-classification", model=path))           # doctest: +SKIP
>>> pipe(["great movie", "awful plot"], batch_size=8)                            # doctest: +SKIP
>>> pipe.save()                                                                  # doctest: +SKIP

Calling the wrapper is calling the pipeline: same arguments, outputs, laziness and exceptions. Capture is scoped
to the wrapper's own calls (a thread-local switch), so other users of the same model are unaffected; an error
inside Chroma is logged and never breaks the pipeline call.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chroma_core.errors import ChromaError
from chroma_core.guard import capture_internal_exceptions
from chroma_core.sessions import QuerySession, TrainingSession
from chroma_core.types import QueryResult

try:
    import torch
except ImportError as exc:  # pragma: no cover - the [transformers] extra installs torch
    raise ImportError("chroma_integrations.transformers needs torch: pip install 'chroma-ml[transformers]'") from exc

__all__ = ["SUPPORTED_TASKS", "ChromaPipeline", "UnsupportedPipelineError"]

logger = logging.getLogger("chroma")

SUPPORTED_TASKS = ("text-classification", "feature-extraction", "token-classification", "image-classification")
_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}
Pooling = Literal["mean", "cls", "max"]


class UnsupportedPipelineError(ChromaError, ValueError):
    """A pipeline whose task ChromaPipeline cannot capture embeddings for."""


def default_input_uri(item: Any) -> str:
    """A stable name for an input: a path or URL as given, else a content hash."""
    if isinstance(item, str):
        if item.startswith(("http://", "https://", "file://", "/", "./")) and "\n" not in item and len(item) < 2048:
            return item
        return "sha1:" + hashlib.sha1(item.encode("utf-8")).hexdigest()
    if hasattr(item, "tobytes") and hasattr(item, "size") and hasattr(item, "mode"):  # a PIL image
        digest = hashlib.sha1(f"{item.mode}{item.size}".encode())
        digest.update(item.tobytes())
        return "sha1:" + digest.hexdigest()
    try:
        text = json.dumps(item, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(item)
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


class _Indexed:
    """The k-th item of a dataset, fetched only when its output is logged."""

    __slots__ = ("dataset", "k")

    def __init__(self, dataset: Any, k: int) -> None:
        self.dataset, self.k = dataset, k

    def get(self) -> Any:
        return self.dataset[self.k]


class _Capture:
    __slots__ = ("hidden",)

    def __init__(self) -> None:
        self.hidden: Any = None


class _State(threading.local):
    def __init__(self) -> None:
        self.active = 0
        self.capture: _Capture | None = None
        self.vectors: collections.deque[np.ndarray | None] = collections.deque()
        self.chunk_sum: Any = None  # running pooled state of an input split over several chunks
        self.chunk_count: Any = None


def _layer_module(model: Any, layer: int | str) -> tuple[Any, str]:
    base = getattr(model, "base_model", model)
    if layer in ("last", "pooler"):
        return base, str(layer)
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise UnsupportedPipelineError(f"layer must be 'last', 'pooler' or an int, not {layer!r}.")
    n = getattr(model.config, "num_hidden_layers", None)
    for _, module in base.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0 and (n is None or len(module) == n):
            if not -len(module) <= layer < len(module):
                raise UnsupportedPipelineError(f"layer {layer} is out of range: the model has {len(module)} layers.")
            return module[layer], f"layer-{layer % len(module)}"
    raise UnsupportedPipelineError(f"cannot find the layer stack of {type(model).__name__}; use layer='last'.")


class ChromaPipeline:
    """Wraps a ``transformers`` pipeline; see the module docstring.

    ``mode="training"`` logs to a :class:`TrainingSession` (call :meth:`save`); ``mode="query"`` asks a
    :class:`QuerySession` about each input: the results go to ``on_result(input, output, result)``, to
    :attr:`results`, and, with ``return_results=True``, are returned as ``(output, result)`` pairs.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        mode: Literal["training", "query"] = "training",
        session: TrainingSession | QuerySession | None = None,
        embedding_set: dict[str, Any] | None = None,
        layer: int | Literal["last", "pooler"] = "last",
        pooling: Pooling = "mean",
        input_uri: Callable[[Any], str] | None = None,
        on_result: Callable[[Any, Any, QueryResult | None], None] | None = None,
        return_results: bool = False,
        max_results: int = 1000,
        **session_kwargs: Any,
    ) -> None:
        task = _ALIASES.get(getattr(pipe, "task", ""), getattr(pipe, "task", ""))
        if task not in SUPPORTED_TASKS:
            raise UnsupportedPipelineError(
                f"ChromaPipeline supports {', '.join(SUPPORTED_TASKS)}; this pipeline's task is {task or 'unknown'!r}."
                " Log embeddings for it with a TrainingSession directly."
            )
        if mode not in ("training", "query"):
            raise UnsupportedPipelineError(f"mode must be 'training' or 'query', not {mode!r}.")
        if pooling not in ("mean", "cls", "max"):
            raise UnsupportedPipelineError(f"pooling must be 'mean', 'cls' or 'max', not {pooling!r}.")
        if layer == "pooler" and task != "feature-extraction" and not hasattr(pipe.model.base_model, "pooler"):
            raise UnsupportedPipelineError(f"{type(pipe.model).__name__} has no pooler; use layer='last'.")
        self.pipe = pipe
        self.task = task
        self.mode = mode
        self.pooling = pooling
        self.return_results = return_results
        self.on_result = on_result
        self._uri = input_uri or default_input_uri
        module, layer_name = _layer_module(pipe.model, layer)
        self._layer = layer
        self.embedding_set = embedding_set or self._derive_set(layer_name)
        if session is None:
            cls = TrainingSession if mode == "training" else QuerySession
            session = cls(embedding_set=self.embedding_set, **session_kwargs)
        self.session = session
        self.results: collections.deque[tuple[str, QueryResult | None]] = collections.deque(maxlen=max_results)
        self._state = _State()
        self._hook = module.register_forward_hook(self._on_layer_output)
        self._original_forward = pipe.forward
        self._had_instance_forward = "forward" in vars(pipe)
        wrapper = _forward_wrapper(weakref.ref(self), self._original_forward)
        pipe.forward = types.MethodType(wrapper, pipe)
        self._finalizer = weakref.finalize(
            self,
            ChromaPipeline._unhook,
            self._hook,
            weakref.ref(pipe),
            wrapper,
            self._original_forward,
            self._had_instance_forward,
        )

    # ---- set-up ---------------------------------------------------------------------------------------------------

    def _derive_set(self, layer_name: str) -> dict[str, Any]:
        config = self.pipe.model.config
        name = (
            getattr(config, "name_or_path", "")
            or getattr(config, "_name_or_path", "")
            or type(self.pipe.model).__name__
        )
        name = str(name)
        if os.path.isdir(name):
            # A local path differs from machine to machine; its last two parts name the model stably.
            name = "/".join(Path(name).resolve().parts[-2:])
        out: dict[str, Any] = {"model": name, "layer": layer_name, "pooling": self.pooling, "task": self.task}
        version = getattr(config, "_commit_hash", None) or getattr(self.pipe.model, "revision", None)
        if version:
            out["model_version"] = str(version)
        else:
            # No hub revision: the architecture's config at least tells different models with one path apart.
            text = config.to_json_string(use_diff=False) if hasattr(config, "to_json_string") else repr(config)
            out["config_sha1"] = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
        return out

    @staticmethod
    def _unhook(hook: Any, pipe_ref: Any, wrapper: Any, original: Any, had_instance_forward: bool) -> None:
        hook.remove()
        pipe = pipe_ref()
        installed = None if pipe is None else vars(pipe).get("forward")
        # Restore only our own patch: if another wrapper was stacked on top, ours stays as a pass-through
        # (its owner is gone, so it just calls on), and the newer wrapper keeps working.
        if installed is not None and getattr(installed, "__func__", None) is wrapper:
            if had_instance_forward:
                pipe.forward = original
            else:
                del pipe.forward

    def close(self) -> None:
        """Remove the hooks; the pipeline is left exactly as it was."""
        self._finalizer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipe, name)

    def save(self, **kwargs: Any) -> Any:
        """Save the training session (training mode)."""
        if not isinstance(self.session, TrainingSession):
            raise ChromaError("save() is for mode='training'; a query session stores nothing to save.")
        return self.session.save(**kwargs)

    # ---- capture --------------------------------------------------------------------------------------------------

    def _on_layer_output(self, module: Any, args: Any, output: Any) -> None:
        capture = self._state.capture
        if capture is None:
            return  # not one of our calls: another user of the same model
        with capture_internal_exceptions("capturing hidden states"):
            if self._layer == "pooler":
                capture.hidden = output.pooler_output if hasattr(output, "pooler_output") else output[1]
            elif hasattr(output, "last_hidden_state"):
                capture.hidden = output.last_hidden_state
            else:
                capture.hidden = output[0] if isinstance(output, (tuple, list)) else output

    @staticmethod
    def _row_ends(model_inputs: dict[str, Any], rows: int) -> list[bool]:
        """Per row of this forward: does it end an input? (Chunked pipelines split one input over rows.)"""
        is_last = model_inputs.get("is_last")
        if is_last is None:
            return [True] * rows
        if isinstance(is_last, bool):
            return [is_last] * rows
        return [bool(x) for x in (is_last.tolist() if hasattr(is_last, "tolist") else is_last)]

    @staticmethod
    def _rows(model_inputs: dict[str, Any]) -> int:
        for key in ("input_ids", "pixel_values", "input_values", "inputs_embeds"):
            value = model_inputs.get(key)
            if value is not None and hasattr(value, "shape"):
                return int(value.shape[0])
        return 1

    def _pool(self, model_inputs: dict[str, Any], capture: _Capture) -> None:
        """Pool one forward's hidden states per row and queue one vector per *input* (chunks merged)."""
        state = self._state
        ends = self._row_ends(model_inputs, self._rows(model_inputs))
        try:
            sums, counts = self._pooled_rows(model_inputs, capture)
            if len(sums) != len(ends):
                raise ChromaError(f"captured {len(sums)} rows for a forward of {len(ends)} inputs")
        except Exception:
            # Keep the queue aligned with the inputs: one placeholder per input this forward finishes.
            state.chunk_sum = state.chunk_count = None
            state.vectors.extend(None for end in ends if end)
            raise
        for i, end in enumerate(ends):
            if state.chunk_sum is None:
                state.chunk_sum, state.chunk_count = sums[i].copy(), counts[i].copy()
            elif self.pooling == "max":
                state.chunk_sum = np.maximum(state.chunk_sum, sums[i])
            elif self.pooling == "mean":
                state.chunk_sum += sums[i]
                state.chunk_count += counts[i]
            # cls: keep the first chunk's [CLS]
            if end:
                state.vectors.append((state.chunk_sum / np.maximum(state.chunk_count, 1e-9)).astype(np.float32))
                state.chunk_sum = state.chunk_count = None

    def _pooled_rows(self, model_inputs: dict[str, Any], capture: _Capture) -> tuple[np.ndarray, np.ndarray]:
        """(sums, counts) per row, computed on the model's device; only these small arrays go to the CPU."""
        hidden = capture.hidden
        if hidden is None:
            raise ChromaError("the hooked layer did not run during the pipeline's forward pass")
        with torch.no_grad():
            if hidden.dim() == 2:  # pooler output: already one vector per row
                sums_t, counts_t = hidden.float(), torch.ones(hidden.shape[0], 1, device=hidden.device)
            else:
                mask = model_inputs.get("attention_mask")
                if mask is None or mask.dim() != 2 or tuple(mask.shape) != tuple(hidden.shape[:2]):
                    mask = torch.ones(hidden.shape[:2], device=hidden.device)
                mask = mask.to(hidden.device, dtype=torch.float32).unsqueeze(-1)
                h = hidden.float()
                ones = torch.ones(h.shape[0], 1, device=h.device)
                if self.pooling == "cls":
                    sums_t, counts_t = h[:, 0], ones
                elif self.pooling == "max":
                    sums_t, counts_t = h.masked_fill(mask == 0, float("-inf")).amax(dim=1), ones
                else:
                    sums_t, counts_t = (h * mask).sum(dim=1), mask.sum(dim=1)
            return sums_t.cpu().numpy(), counts_t.cpu().numpy()

    # ---- calls ----------------------------------------------------------------------------------------------------

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        state = self._state
        if isinstance(inputs, list):
            state.active += 1
            try:
                outputs = self.pipe(inputs, *args, **kwargs)
            finally:
                state.active -= 1
            results = [self._record(item, out) for item, out in zip(inputs, outputs, strict=False)]
            return list(zip(outputs, results, strict=True)) if self.return_results else outputs
        if isinstance(inputs, (types.GeneratorType, torch.utils.data.Dataset)):
            return self._lazy(inputs, args, kwargs)
        # Anything else is what the pipeline treats as one input (a str, an image, a dict, ...).
        state.active += 1
        try:
            output = self.pipe(inputs, *args, **kwargs)
        finally:
            state.active -= 1
        result = self._record(inputs, output)
        return (output, result) if self.return_results else output

    def _lazy(self, inputs: Any, args: Any, kwargs: Any) -> Iterator[Any]:
        """Generators and datasets stay lazy: a generator's items are recorded as the pipeline pulls them; a
        dataset is passed on untouched and its k-th output belongs to ``dataset[k]``."""
        seen: collections.deque[Any] = collections.deque()
        if isinstance(inputs, types.GeneratorType):

            def recording() -> Iterator[Any]:
                for item in inputs:
                    seen.append(item)
                    yield item

            source: Any = recording()
        else:
            source = inputs
            seen.extend(_Indexed(inputs, k) for k in range(len(inputs)))

        state = self._state
        state.active += 1
        try:
            outputs = iter(self.pipe(source, *args, **kwargs))
        finally:
            state.active -= 1

        def paired() -> Iterator[Any]:
            while True:
                state.active += 1
                try:
                    out = next(outputs)
                except StopIteration:
                    return
                finally:
                    state.active -= 1
                item = seen.popleft() if seen else None
                if isinstance(item, _Indexed):
                    item = item.get()
                result = self._record(item, out)
                yield (out, result) if self.return_results else out

        return paired()

    def _record(self, item: Any, output: Any) -> QueryResult | None:
        vectors = self._state.vectors
        vector = vectors.popleft() if vectors else None
        result: QueryResult | None = None
        with capture_internal_exceptions("logging an embedding"):
            if vector is None:
                raise ChromaError("no embedding was captured for an input (did the pipeline skip its forward?)")
            uri = self._uri(item)
            inferences = None if self.task == "feature-extraction" else output
            if isinstance(self.session, TrainingSession):
                self.session.log(input_uri=uri, embedding=vector, inferences=inferences)
            else:
                result = self.session.log(input_uri=uri, embedding=vector, inferences=inferences)
                self.results.append((uri, result))
        if self.on_result is not None and self.mode == "query":
            with capture_internal_exceptions("the on_result callback"):
                self.on_result(item, output, result)
        return result


def _forward_wrapper(owner_ref: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    def forward(pipe: Any, model_inputs: Any, **forward_params: Any) -> Any:
        owner = owner_ref()
        if owner is None or not owner._state.active or not owner._finalizer.alive:
            return original(model_inputs, **forward_params)
        capture = _Capture()
        owner._state.capture = capture
        try:
            # The user's forward runs exactly once, and its exceptions pass through untouched.
            outputs = original(model_inputs, **forward_params)
        finally:
            owner._state.capture = None
        with capture_internal_exceptions("pooling embeddings"):
            owner._pool(model_inputs, capture)
        return outputs

    forward._chroma_wrapper = True  # type: ignore[attr-defined]
    return forward
