"""Object detection (DETR, Conditional/Deformable DETR, YOLOS): the pooled encoder states of each image, or, with
``boxes=True``, one vector per detected box.

DETR-like models run a backbone, then a transformer encoder over its feature map: the default vector is the mean
of the encoder's last hidden state over every position, one per image. Models without an encoder output (YOLOS)
use their last hidden state.

``boxes=True`` (DETR and Table Transformer): DETR's decoder turns each of its object queries into one state, and
the class and box heads read each box from its query's state alone, so that state is the box's embedding. The
pipeline keeps the queries whose best class (softmax over the classes and "no object", "no object" left out)
scores above ``threshold``, in query order; each box the pipeline returns is matched, in that order, to the
query of its label whose score is nearest its own, and logged with the box (score, label, coordinates) as its
inferences. Other detectors rank (query, class) pairs with a sigmoid and top-k (Deformable and Conditional DETR,
RT-DETR) or have no decoder queries (YOLOS): their boxes cannot be matched to a query the same way, so
``boxes=True`` refuses them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from chroma_core.errors import ChromaError
from chroma_integrations.transformers._capture import torch
from chroma_integrations.transformers._common import UnsupportedPipelineError, default_preview
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


class BoxStates(NamedTuple):
    """One image's decoder query states ``(queries, dim)`` with each query's best class score and label id."""

    states: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class BoxKind(DetectionKind):
    """``boxes=True``: the decoder state of each box the pipeline keeps (see the module docstring)."""

    models = ("DetrForObjectDetection", "TableTransformerForObjectDetection")
    per_box = True
    score_tolerance = 1e-6  # the pipeline's scores are the same float32 softmax, taken image by image

    def check(self, pipe: Any, layer: Any, pooling: str) -> None:
        name = type(pipe.model).__name__
        if name not in self.models:
            raise UnsupportedPipelineError(
                f"boxes=True needs a DETR-style detector ({', '.join(self.models)}), whose boxes each come from one"
                f" decoder query; {name} is not one. Use the default (one vector per image)."
            )
        if layer != "last":
            raise UnsupportedPipelineError("boxes=True logs the decoder's last hidden state; leave layer='last'.")

    def target(self, model: Any, layer: Any) -> tuple[Any, str]:
        return model, "decoder_last"  # the whole detector: its output holds the decoder states and the logits

    def hidden(self, output: Any, layer: Any) -> Any:
        return output

    def box_rows(self, output: Any) -> list[BoxStates]:
        """One BoxStates per image of the batch; scores computed on the device, one copy to the CPU."""
        if output is None or getattr(output, "logits", None) is None:
            raise ChromaError("the detector's forward gave no logits to match boxes with")
        with torch.no_grad():
            scores, labels = torch.nn.functional.softmax(output.logits, -1)[..., :-1].max(-1)
            states = output.last_hidden_state.float().cpu().numpy()
            scores_np, labels_np = scores.float().cpu().numpy(), labels.cpu().numpy()
        return [BoxStates(states[i], scores_np[i], labels_np[i]) for i in range(states.shape[0])]

    def match(self, found: BoxStates, boxes: Any, label2id: dict[str, int]) -> list[np.ndarray]:
        """The decoder state of each box in the pipeline's output, in its order."""
        if not isinstance(boxes, list):
            raise ChromaError(f"expected the pipeline's list of boxes for an image, got {type(boxes).__name__}")
        out, j = [], 0
        for box in boxes:
            want = label2id.get(str(box.get("label"))) if isinstance(box, dict) else None
            if want is None or not isinstance(box.get("score"), float):
                raise ChromaError(f"cannot read a label and score from the box {box!r}; no box of this image logged")
            # The nearest score among the later queries of that label: untrained or ambiguous detectors give
            # queries scores closer together than the tolerance, so the first one within it is not enough.
            gaps = np.abs(found.scores[j:].astype(np.float64) - box["score"])
            gaps[found.labels[j:] != want] = np.inf
            best = int(np.argmin(gaps)) if len(gaps) else -1
            if best < 0 or gaps[best] > self.score_tolerance:
                raise ChromaError(f"cannot match the box {box!r} to a decoder query; no box of this image logged")
            out.append(found.states[j + best])
            j += best + 1
        return out

    def box_preview(self, item: Any, box: dict[str, Any]) -> str:
        corners = box.get("box", {})
        where = ", ".join(str(corners.get(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        image = default_preview(item)
        return f"{box.get('label')} {float(box.get('score', 0.0)):.2f} at ({where})" + (f" in {image}" if image else "")
