"""``ChromaPipeline(pipe)``: log the embedding of every input a Hugging Face pipeline processes.

The embedding is captured inside the pipeline's own forward pass: a forward hook on the module the pipeline's
*kind* names (see :mod:`._kind`) keeps its hidden states, and a thin wrapper around the pipeline's ``forward``
pools them (on the model's device) with the batch's mask, so only the pooled vectors are copied to the CPU. The
model never runs twice.

>>> from transformers import pipeline                                           # doctest: +SKIP
>>> pipe = ChromaPipeline(pipeline("text-classification", model=path))           # doctest: +SKIP
>>> pipe(["great movie", "awful plot"], batch_size=8)                            # doctest: +SKIP
>>> pipe.save()                                                                  # doctest: +SKIP

Calling the wrapper is calling the pipeline: same arguments, outputs, laziness and exceptions. Capture is scoped
to the wrapper's own calls (a thread-local switch), so other users of the same model are unaffected; an error
inside Chroma is logged and never breaks the pipeline call. ``ChromaPipeline(SentenceTransformer(...))`` gives
a :class:`~chroma_integrations.transformers.sentence_transformers.ChromaSentenceTransformer`.
"""

from __future__ import annotations

import collections
import hashlib
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from chroma_core.errors import ChromaError
from chroma_core.guard import capture_internal_exceptions
from chroma_core.sessions import QuerySession, TrainingSession
from chroma_core.types import QueryResult
from chroma_integrations.transformers._capture import Capture, State, merge, pooled_rows, row_ends, rows_of, torch
from chroma_integrations.transformers._common import (
    Indexed,
    Pooling,
    UnsupportedPipelineError,
    default_input_uri,
    open_session,
    save_training,
)
from chroma_integrations.transformers._registry import SUPPORTED_TASKS, kind_for
from chroma_integrations.transformers.detection import BoxKind, BoxStates, DetectionKind

__all__ = ["ChromaPipeline"]


def _is_sentence_transformer(obj: Any) -> bool:
    module = sys.modules.get("sentence_transformers")
    cls = getattr(module, "SentenceTransformer", None) if module is not None else None
    return cls is not None and isinstance(obj, cls)


class ChromaPipeline:
    """Wraps a ``transformers`` pipeline; see the module docstring.

    ``mode="training"`` logs to a :class:`TrainingSession` (call :meth:`save`); ``mode="query"`` asks a
    :class:`QuerySession` about each input: the results go to ``on_result(input, output, result)``, to
    :attr:`results`, and, with ``return_results=True``, are returned as ``(output, result)`` pairs.
    ``preview`` (default on) stores a short text per input (the text or prompt itself, ``image 40x40 RGB``);
    ``preview=False`` stores none, and a callable ``preview(input) -> str | None`` chooses.
    ``boxes=True`` (object-detection, DETR): one record per detected box instead of one per image (see
    :mod:`.detection`); its results, per input, are a list with one per box.
    """

    def __new__(cls, pipe: Any = None, *args: Any, **kwargs: Any) -> Any:
        if _is_sentence_transformer(pipe):
            from chroma_integrations.transformers.sentence_transformers import ChromaSentenceTransformer

            return ChromaSentenceTransformer(pipe, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        pipe: Any,
        *,
        mode: Literal["training", "query"] = "training",
        session: TrainingSession | QuerySession | None = None,
        embedding_set: dict[str, Any] | None = None,
        layer: int | str = "last",
        pooling: Pooling = "mean",
        input_uri: Callable[[Any], str] | None = None,
        preview: bool | Callable[[Any], str | None] = True,
        on_result: Callable[[Any, Any, QueryResult | None], None] | None = None,
        return_results: bool = False,
        max_results: int = 1000,
        boxes: bool = False,
        **session_kwargs: Any,
    ) -> None:
        task = getattr(pipe, "task", "") or ""
        kind = kind_for(task)
        if kind is None:
            raise UnsupportedPipelineError(
                f"ChromaPipeline supports {', '.join(SUPPORTED_TASKS)} pipelines and SentenceTransformer models;"
                f" this pipeline's task is {task or 'unknown'!r}. Log embeddings for it with a TrainingSession"
                " directly (session.log(input_uri=..., embedding=...))."
            )
        self._boxes: BoxKind | None = None
        if boxes:
            if not isinstance(kind, DetectionKind):
                raise UnsupportedPipelineError(f"boxes=True is for object-detection pipelines, not {task!r}.")
            kind = self._boxes = BoxKind()
        kind.check(pipe, layer, pooling)
        self.pipe = pipe
        self.task = kind.tasks[0] if task not in kind.tasks else task
        self.kind = kind
        self.mode = mode
        self.pooling = pooling
        self.return_results = return_results
        self.on_result = on_result
        self._uri = input_uri or default_input_uri
        self._preview: Callable[[Any], str | None] | None = (
            kind.preview if preview is True else (preview if callable(preview) else None)
        )
        self._box_preview = preview is True
        module, layer_name = kind.target(pipe.model, layer)
        self._layer = layer
        self.embedding_set = embedding_set or self._derive_set(layer_name)
        self.session = open_session(mode, session, self.embedding_set, session_kwargs)
        self.results: collections.deque[tuple[str, QueryResult | None]] = collections.deque(maxlen=max_results)
        self._state = State()
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
        out: dict[str, Any] = {
            "model": model_name(config, self.pipe.model),
            "layer": layer_name,
            "pooling": "box" if self._boxes is not None else self.pooling,
            "task": self.task,
        }
        out.update(model_version(config, self.pipe.model))
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
        return save_training(self.session, kwargs)

    # ---- capture --------------------------------------------------------------------------------------------------

    def _on_layer_output(self, module: Any, args: Any, output: Any) -> None:
        capture = self._state.capture
        if capture is None:
            return  # not one of our calls: another user of the same model
        capture.calls += 1
        if capture.first_only and capture.calls > 1:
            return  # a decoding step after the prefill (or a second encoder window): not the prompt's states
        with capture_internal_exceptions("capturing hidden states"):
            capture.hidden = self.kind.hidden(output, self._layer)

    def _pool(self, model_inputs: Any, capture: Capture) -> None:
        """Pool one forward's hidden states per row and queue one vector per *input* (chunks merged)."""
        state = self._state
        ends = row_ends(model_inputs, rows_of(model_inputs))
        try:
            if self._boxes is not None:  # one image a row, never chunked: its query states, matched at record time
                found = self._boxes.box_rows(capture.hidden)
                if len(found) != len(ends):
                    raise ChromaError(f"captured {len(found)} images for a forward of {len(ends)} inputs")
                state.vectors.extend(found)
                return
            sums, counts = pooled_rows(capture.hidden, self.kind.mask(model_inputs), self.pooling)
            if len(sums) != len(ends):
                raise ChromaError(f"captured {len(sums)} rows for a forward of {len(ends)} inputs")
        except Exception:
            # Keep the queue aligned with the inputs: one placeholder per input this forward finishes.
            state.chunk_sum = state.chunk_count = None
            state.vectors.extend(None for end in ends if end)
            raise
        merge(state, sums, counts, ends, self.pooling)

    # ---- calls ----------------------------------------------------------------------------------------------------

    def __call__(self, inputs: Any, *args: Any, labels: Any = None, **kwargs: Any) -> Any:
        """Run the pipeline and log each input's embedding; returns exactly what the pipeline returns.

        ``labels`` (training mode only; Chroma takes it, the pipeline never sees it): the known training label
        of each input, a list beside a list of inputs or one value for one input; it powers
        ``label_disagreement`` for production inputs later.
        """
        state = self._state
        given = self._labels(inputs, labels)
        if isinstance(inputs, list) and not _is_chat(inputs):
            state.active += 1
            try:
                outputs = self.pipe(inputs, *args, **kwargs)
            finally:
                state.active -= 1
            results = [self._record(item, out, next(given, None)) for item, out in zip(inputs, outputs, strict=False)]
            return list(zip(outputs, results, strict=True)) if self.return_results else outputs
        if isinstance(inputs, (types.GeneratorType, torch.utils.data.Dataset)):
            return self._lazy(inputs, args, kwargs, given)
        # Anything else is what the pipeline treats as one input (a str, an image, a dict, one chat, ...).
        state.active += 1
        try:
            output = self.pipe(inputs, *args, **kwargs)
        finally:
            state.active -= 1
        result = self._record(inputs, output, next(given, None))
        return (output, result) if self.return_results else output

    def _labels(self, inputs: Any, labels: Any) -> Iterator[Any]:
        """The labels, one per input in order; checked before the pipeline runs (a wrong call does no work)."""
        if labels is None:
            return iter(())
        if self.mode != "training":
            raise ChromaError("labels= are training labels: pass them to a ChromaPipeline in training mode.")
        if self._boxes is not None:
            raise ChromaError("labels= name a whole input; with boxes=True each box is logged with its own label.")
        if (isinstance(inputs, list) and not _is_chat(inputs)) or isinstance(inputs, types.GeneratorType):
            if not isinstance(labels, (list, tuple)):
                raise ChromaError("labels= must be a list with one label per input when the inputs are a list.")
            if not isinstance(inputs, types.GeneratorType) and len(labels) != len(inputs):
                raise ChromaError(f"labels= has {len(labels)} labels for {len(inputs)} inputs; give one per input.")
            return iter(list(labels))
        if isinstance(inputs, torch.utils.data.Dataset):
            if not isinstance(labels, (list, tuple)) or len(labels) != len(inputs):  # type: ignore[arg-type]
                raise ChromaError("labels= must be a list with one label per item of the dataset.")
            return iter(list(labels))
        return iter([labels])

    def _lazy(self, inputs: Any, args: Any, kwargs: Any, given: Iterator[Any]) -> Iterator[Any]:
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
            seen.extend(Indexed(inputs, k) for k in range(len(inputs)))

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
                if isinstance(item, Indexed):
                    item = item.get()
                result = self._record(item, out, next(given, None))
                yield (out, result) if self.return_results else out

        return paired()

    def _record(self, item: Any, output: Any, label: Any = None) -> QueryResult | list[QueryResult | None] | None:
        vectors = self._state.vectors
        vector = vectors.popleft() if vectors else None
        if isinstance(vector, BoxStates):
            return self._record_boxes(item, output, vector)
        result: QueryResult | None = None
        with capture_internal_exceptions("logging an embedding"):
            if vector is None:
                raise ChromaError("no embedding was captured for an input (did the pipeline skip its forward?)")
            uri = self._uri(item)
            inferences = output if self.kind.log_inferences else None
            shown = self._preview(item) if self._preview is not None else None
            if isinstance(self.session, TrainingSession):
                self.session.log(input_uri=uri, embedding=vector, inferences=inferences, label=label, preview=shown)
            else:
                result = self.session.log(input_uri=uri, embedding=vector, inferences=inferences, preview=shown)
                self.results.append((uri, result))
        if self.on_result is not None and self.mode == "query":
            with capture_internal_exceptions("the on_result callback"):
                self.on_result(item, output, result)
        return result

    def _record_boxes(self, item: Any, output: Any, found: BoxStates) -> list[QueryResult | None]:
        """One record per box of ``output`` (the pipeline's boxes for ``item``): ``<input uri>#box<k>``."""
        assert self._boxes is not None
        results: list[QueryResult | None] = []
        logged: list[Any] = []
        with capture_internal_exceptions("logging box embeddings"):
            id2label = self.pipe.model.config.id2label
            vectors = self._boxes.match(found, output, {name: int(i) for i, name in id2label.items()})
            uri = self._uri(item)
            for k, (box, vector) in enumerate(zip(output, vectors, strict=True)):
                box_uri = f"{uri}#box{k}"
                shown = self._boxes.box_preview(item, box) if self._box_preview else None
                if shown is None and self._preview is not None and not self._box_preview:
                    shown = self._preview(item)
                if isinstance(self.session, TrainingSession):
                    self.session.log(input_uri=box_uri, embedding=vector, inferences=box, preview=shown)
                else:
                    result = self.session.log(input_uri=box_uri, embedding=vector, inferences=box, preview=shown)
                    self.results.append((box_uri, result))
                    results.append(result)
                    logged.append(box)
        if self.on_result is not None and self.mode == "query":
            for box, answer in zip(logged, results, strict=True):
                with capture_internal_exceptions("the on_result callback"):
                    self.on_result(item, box, answer)
        return results


def _is_chat(inputs: list[Any]) -> bool:
    """One chat (a list of messages) is one input, not a batch of them."""
    return bool(inputs) and all(isinstance(m, dict) and "role" in m and "content" in m for m in inputs)


def model_name(config: Any, model: Any) -> str:
    """The model's name for its embedding set: the hub id, or a local path's last two parts (stable across
    machines), or the class name."""
    name = str(getattr(config, "name_or_path", "") or getattr(config, "_name_or_path", "") or type(model).__name__)
    if os.path.isdir(name):
        name = "/".join(Path(name).resolve().parts[-2:])
    return name


def model_version(config: Any, model: Any) -> dict[str, str]:
    """``model_version`` (the hub revision) where known, else ``config_sha1`` to tell models with one path apart."""
    version = getattr(config, "_commit_hash", None) or getattr(model, "revision", None)
    if version:
        return {"model_version": str(version)}
    text = config.to_json_string(use_diff=False) if hasattr(config, "to_json_string") else repr(config)
    return {"config_sha1": hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]}


def _forward_wrapper(owner_ref: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    def forward(pipe: Any, model_inputs: Any, **forward_params: Any) -> Any:
        owner = owner_ref()
        if owner is None or not owner._state.active or not owner._finalizer.alive:
            return original(model_inputs, **forward_params)
        # Pipelines pop keys (is_last, attention_mask) from their inputs inside forward: read them from a copy.
        seen = dict(model_inputs) if hasattr(model_inputs, "keys") else {}
        capture = Capture(owner.kind.first_only)
        owner._state.capture = capture
        try:
            # The user's forward runs exactly once, and its exceptions pass through untouched.
            outputs = original(model_inputs, **forward_params)
        finally:
            owner._state.capture = None
        with capture_internal_exceptions("pooling embeddings"):
            owner._pool(seen, capture)
        return outputs

    forward._chroma_wrapper = True  # type: ignore[attr-defined]
    return forward
