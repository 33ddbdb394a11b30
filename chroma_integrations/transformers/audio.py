"""Audio pipelines: audio classification and speech recognition (wav2vec2, HuBERT, Whisper).

The embedding is the encoder's output pooled over its frames. For Whisper-like encoder-decoder models the encoder
runs once per input (per batch), however many tokens the decoder then generates; the hook keeps that one run.
With ``chunk_length_s`` a long recording is split into chunks; their rows merge into one vector per input (the
mean over every chunk's frames). Whisper's own long-form decoding (a recording over 30 s without
``chunk_length_s``) runs the encoder once per 30-second window: the vector is the first window's.
"""

from __future__ import annotations

from typing import Any

from chroma_integrations.transformers._kind import Kind, encoder_of


class AudioKind(Kind):
    tasks: tuple[str, ...] = ("audio-classification", "automatic-speech-recognition")
    poolings: tuple[str, ...] = ("mean", "max")
    named_layers: tuple[str, ...] = ("last",)
    first_only = True

    def root(self, model: Any) -> Any:
        return encoder_of(model)

    def mask(self, model_inputs: Any) -> Any:
        # The feature extractor's mask counts input samples, not encoder frames: every frame counts.
        return None

    def preview(self, item: Any) -> str | None:
        if hasattr(item, "shape") and hasattr(item, "dtype"):
            return f"audio {item.shape[-1]} samples"
        return super().preview(item)
