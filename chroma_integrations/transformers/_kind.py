"""A capture kind: where a family of pipelines keeps the embedding, and how to read it from a forward pass.

Each kind module (text, vision, multimodal, audio, detection, generation) defines one subclass per family of
tasks; :mod:`._registry` maps a pipeline's task to its kind. A kind only *reads*: it names the module to hook,
picks the hidden states out of that module's output, and says which positions count when pooling.
"""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._capture import torch
from chroma_integrations.transformers._common import POOLINGS, UnsupportedPipelineError, default_preview


class Kind:
    """The default: a transformer whose base model's last hidden state (or pooler) is the embedding."""

    tasks: tuple[str, ...] = ()
    poolings: tuple[str, ...] = POOLINGS
    named_layers: tuple[str, ...] = ("last", "pooler")
    first_only = False  # keep the first time the hooked module runs in a forward (prefill, encoder), not the rest
    log_inferences = True  # the pipeline's output is logged as the record's inferences

    def check(self, pipe: Any, layer: Any, pooling: str) -> None:
        """Refuse, at wrap time, options this kind cannot honour."""
        if pooling not in self.poolings:
            raise UnsupportedPipelineError(
                f"pooling must be one of {', '.join(map(repr, self.poolings))} for {pipe.task}, not {pooling!r}."
            )
        if isinstance(layer, str) and layer not in self.named_layers:
            raise UnsupportedPipelineError(
                f"layer must be an int or one of {', '.join(map(repr, self.named_layers))} for {pipe.task},"
                f" not {layer!r}."
            )

    def root(self, model: Any) -> Any:
        """The module whose output holds the embedding (and whose layer stack ``layer=int`` indexes)."""
        return getattr(model, "base_model", model)

    def target(self, model: Any, layer: Any) -> tuple[Any, str]:
        """(module to hook, the layer's name in the embedding set)."""
        root = self.root(model)
        if isinstance(layer, str):
            return root, layer
        return layer_module(root, model.config, layer)

    def hidden(self, output: Any, layer: Any) -> Any:
        """The hidden states in the hooked module's output: ``(rows, tokens, dim)`` or ``(rows, dim)``."""
        if layer == "pooler":
            return output.pooler_output if hasattr(output, "pooler_output") else output[1]
        if hasattr(output, "last_hidden_state"):
            return output.last_hidden_state
        return output[0] if isinstance(output, (tuple, list)) else output

    def mask(self, model_inputs: Any) -> Any:
        """Which positions of each row count: ``(rows, tokens)``, or None for all of them."""
        return model_inputs.get("attention_mask")

    def preview(self, item: Any) -> str | None:
        return default_preview(item)


def layer_module(root: Any, config: Any, layer: Any) -> tuple[Any, str]:
    """The ``layer``-th block of the first layer stack (a ModuleList as long as the config's layer count)."""
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise UnsupportedPipelineError(f"layer must be 'last', 'pooler' or an int, not {layer!r}.")
    n = getattr(config, "num_hidden_layers", None)
    for _, module in root.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0 and (n is None or len(module) == n):
            if not -len(module) <= layer < len(module):
                raise UnsupportedPipelineError(f"layer {layer} is out of range: the model has {len(module)} layers.")
            return module[layer], f"layer-{layer % len(module)}"
    raise UnsupportedPipelineError(f"cannot find the layer stack of {type(root).__name__}; use layer='last'.")


def encoder_of(model: Any) -> Any:
    """An encoder-decoder model's encoder (it runs once per input, however many tokens the decoder makes)."""
    if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        return model.get_encoder()
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, torch.nn.Module):
        return encoder
    return getattr(model, "base_model", model)
