"""Image pipelines: image classification and image feature extraction (ViT, CLIP/SigLIP vision towers)."""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._kind import Kind


class ImageKind(Kind):
    """The base model's last hidden state over every patch (or the pooler, or a block)."""

    tasks: tuple[str, ...] = ("image-classification",)
    poolings: tuple[str, ...] = ("mean", "cls", "max")

    def mask(self, model_inputs: Any) -> Any:
        return None  # every patch counts


class ImageFeatureKind(ImageKind):
    """``image-feature-extraction``; with a model that projects (``CLIPVisionModelWithProjection``,
    ``layer="image_embeds"`` logs the model's own image embedding, the one CLIP compares with text."""

    tasks: tuple[str, ...] = ("image-feature-extraction",)
    named_layers: tuple[str, ...] = ("last", "pooler", "image_embeds")
    log_inferences = False  # its output is the features themselves

    def root(self, model: Any) -> Any:
        return model  # the vision tower itself: its output carries the pooler and any projection

    def hidden(self, output: Any, layer: Any) -> Any:
        if layer == "image_embeds":
            return output.image_embeds
        return super().hidden(output, layer)
