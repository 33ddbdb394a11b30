"""Text generation (decoder-only LLMs, chat inputs) and text-to-text generation: the prompt's embedding.

The vector comes from the prefill pass only: the hook keeps the first time the hooked module runs in a
``generate`` call, when it sees the whole prompt, and ignores every decoding step, so generation speed is unchanged
and the vector does not depend on what is generated. Pooling is over the prompt's tokens: ``"mean"`` (default) or
``"last"`` (the last prompt token, which a causal model has seen everything before). Encoder-decoder models pool
their encoder's output. A chat input (a list of messages) is embedded as the pipeline renders it with the
tokenizer's chat template; its preview is the messages, one ``role: content`` line each.
"""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._kind import Kind, encoder_of


class GenerationKind(Kind):
    # transformers 5.x has no text2text-generation pipeline, so that task is refused at wrap time.
    tasks: tuple[str, ...] = ("text-generation",)
    poolings: tuple[str, ...] = ("mean", "last")
    named_layers: tuple[str, ...] = ("last",)
    first_only = True

    def root(self, model: Any) -> Any:
        if getattr(model.config, "is_encoder_decoder", False):
            return encoder_of(model)
        return getattr(model, "base_model", model)
