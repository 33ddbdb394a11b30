"""Multimodal pipelines: zero-shot image classification (CLIP, SigLIP): the image's own embedding."""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._common import UnsupportedPipelineError
from chroma_integrations.transformers._kind import Kind


class ZeroShotImageKind(Kind):
    """The model's image embedding (``image_embeds``: projected, as the model compares it with the labels' text).

    It is one vector per image already, so there is nothing to pool; the candidate labels do not change it.
    """

    tasks: tuple[str, ...] = ("zero-shot-image-classification",)
    poolings: tuple[str, ...] = ("mean",)
    named_layers: tuple[str, ...] = ("last",)

    def check(self, pipe: Any, layer: Any, pooling: str) -> None:
        if layer != "last":
            raise UnsupportedPipelineError(
                f"zero-shot-image-classification logs the model's image embedding; layer must be 'last', not {layer!r}."
            )
        super().check(pipe, layer, pooling)

    def target(self, model: Any, layer: Any) -> tuple[Any, str]:
        return model, "image_embeds"

    def hidden(self, output: Any, layer: Any) -> Any:
        embeds = getattr(output, "image_embeds", None)
        if embeds is None:
            raise UnsupportedPipelineError(f"the model's output has no image_embeds ({type(output).__name__})")
        return embeds

    def mask(self, model_inputs: Any) -> Any:
        return None
