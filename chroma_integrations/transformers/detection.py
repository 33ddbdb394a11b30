"""Object detection (DETR, Conditional/Deformable DETR, YOLOS): the pooled encoder states of each image.

DETR-like models run a backbone, then a transformer encoder over its feature map: the vector is the mean of the
encoder's last hidden state over every position, one per image. Models without an encoder output (YOLOS) use
their last hidden state.
"""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._kind import Kind


class DetectionKind(Kind):
    tasks: tuple[str, ...] = ("object-detection",)
    poolings: tuple[str, ...] = ("mean", "max")
    named_layers: tuple[str, ...] = ("last",)

    def hidden(self, output: Any, layer: Any) -> Any:
        encoded = getattr(output, "encoder_last_hidden_state", None)
        if encoded is not None and isinstance(layer, str):
            return encoded
        return super().hidden(output, layer)

    def mask(self, model_inputs: Any) -> Any:
        return None  # the pixel mask is per pixel, not per encoder position
