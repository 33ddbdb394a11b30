"""Text pipelines: classification, feature extraction, token classification, zero-shot classification."""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._common import UnsupportedPipelineError
from chroma_integrations.transformers._kind import Kind


class TextKind(Kind):
    """The base model's last hidden state (or a block, or the pooler), pooled over the attention mask.

    Token classification splits a long input into overlapping chunks: their rows merge into one vector per input.
    """

    tasks: tuple[str, ...] = ("text-classification", "feature-extraction", "token-classification")

    def check(self, pipe: Any, layer: Any, pooling: str) -> None:
        super().check(pipe, layer, pooling)
        if layer == "pooler" and pipe.task != "feature-extraction" and not hasattr(pipe.model.base_model, "pooler"):
            raise UnsupportedPipelineError(f"{type(pipe.model).__name__} has no pooler; use layer='last'.")


class FeatureKind(TextKind):
    tasks: tuple[str, ...] = ("feature-extraction",)
    log_inferences = False  # its output is the embedding itself: not logged twice


class ZeroShotTextKind(TextKind):
    """``zero-shot-classification``: the premise's embedding.

    The pipeline runs the model once per (premise, candidate label) pair, in batches; the vector pools the premise's
    tokens only (``token_type_ids == 0``, where the tokenizer makes them), averaged over every pair of the input.
    Through attention those states still see the hypothesis, so other candidate labels give a close, not an equal,
    vector: keep the labels (and the hypothesis template) fixed within one embedding set. Models without token
    types pool the whole pair.
    """

    tasks: tuple[str, ...] = ("zero-shot-classification",)

    def mask(self, model_inputs: Any) -> Any:
        mask = model_inputs.get("attention_mask")
        types = model_inputs.get("token_type_ids")
        if mask is None or types is None or tuple(types.shape) != tuple(mask.shape):
            return mask
        return mask * (types == 0)

    def preview(self, item: Any) -> str | None:
        return item if isinstance(item, str) else super().preview(item)
