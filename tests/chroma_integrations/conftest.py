"""Tiny real models, built from configs, with tokenizers made from a vocab the test writes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = [
    "the",
    "a",
    "an",
    "movie",
    "film",
    "plot",
    "actor",
    "great",
    "awful",
    "good",
    "bad",
    "boring",
    "fun",
    "is",
    "was",
    "and",
    "but",
    "not",
    "very",
    "really",
    "story",
    "end",
    "music",
    "scene",
    "loved",
    "hated",
    "cat",
    "dog",
    "paris",
    "london",
    "alice",
    "bob",
    "went",
    "to",
    "city",
    "in",
    "of",
]


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return transformers.BertTokenizerFast(vocab_file=str(path), model_max_length=32)


def bert_config(tokenizer, **kw):
    return transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        **kw,
    )


@pytest.fixture(scope="session")
def text_pipe(tokenizer):
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(bert_config(tokenizer, num_labels=3)).eval()
    return transformers.pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="session")
def text_model_dir(text_pipe, tmp_path_factory):
    """The text classifier saved as a model folder: what ``pipeline(task, model="...")`` loads by name."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    text_pipe.model.save_pretrained(folder)
    text_pipe.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def feature_pipe(tokenizer):
    torch.manual_seed(1)
    model = transformers.BertModel(bert_config(tokenizer)).eval()
    return transformers.pipeline("feature-extraction", model=model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="session")
def token_pipe(tokenizer):
    torch.manual_seed(2)
    config = bert_config(
        tokenizer, num_labels=3, id2label={0: "O", 1: "B-PER", 2: "B-LOC"}, label2id={"O": 0, "B-PER": 1, "B-LOC": 2}
    )
    model = transformers.BertForTokenClassification(config).eval()
    return transformers.pipeline("token-classification", model=model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="session")
def image_pipe():
    pytest.importorskip("PIL")
    torch.manual_seed(3)
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=2,
    )
    model = transformers.ViTForImageClassification(config).eval()
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    return transformers.pipeline("image-classification", model=model, image_processor=processor, device="cpu")


# ---- more kinds (issue 19): tiny models from configs, tokenizers and processors written here ----------------------

WHISPER_SPECIALS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|notimestamps|>",
    "<|nocaptions|>",
    "<|startofprev|>",
    "<|startoflm|>",
]


def byte_vocab(specials):
    """A byte-level BPE vocabulary with no merges: one token per byte, then the special tokens."""
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    for s in specials:
        vocab[s] = len(vocab)
    return vocab


def images(n, seed=0, size=40):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for i in range(n)]


def waves(n, seed=0, seconds=0.5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(int(16000 * seconds * (1 + i % 2))) * 0.1).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    tok = transformers.GPT2Tokenizer(vocab=byte_vocab(["<|endoftext|>"]), merges=[], model_max_length=64)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # a decoder-only model generates after the prompt
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    return tok


@pytest.fixture(scope="session")
def generation_pipe(gpt2_tokenizer):
    torch.manual_seed(4)
    eos = gpt2_tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(gpt2_tokenizer),
        n_positions=128,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, do_sample=False, max_new_tokens=6
    )
    return transformers.pipeline("text-generation", model=model, tokenizer=gpt2_tokenizer, device="cpu")


def _whisper_parts():
    vocab = byte_vocab(WHISPER_SPECIALS)
    tok = transformers.WhisperTokenizer(vocab=vocab, merges=[], model_max_length=64)
    tok.pad_token = "<|endoftext|>"
    # One second of 16 kHz audio -> 100 mel frames -> 50 encoder positions.
    fe = transformers.WhisperFeatureExtractor(feature_size=16, sampling_rate=16000, chunk_length=1)
    sot, eot = vocab["<|startoftranscript|>"], vocab["<|endoftext|>"]
    config = transformers.WhisperConfig(
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_mel_bins=16,
        max_source_positions=50,
        max_target_positions=32,
        decoder_start_token_id=sot,
        pad_token_id=eot,
        eos_token_id=eot,
        bos_token_id=eot,
    )
    generation = transformers.GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_new_tokens=5,
        no_timestamps_token_id=vocab["<|notimestamps|>"],
    )
    return tok, fe, config, generation


@pytest.fixture(scope="session")
def asr_pipe():
    torch.manual_seed(5)
    tok, fe, config, generation = _whisper_parts()
    model = transformers.WhisperForConditionalGeneration(config).eval()
    model.generation_config = generation
    return transformers.pipeline(
        "automatic-speech-recognition", model=model, tokenizer=tok, feature_extractor=fe, device="cpu"
    )


@pytest.fixture(scope="session")
def audio_pipe():
    torch.manual_seed(6)
    _, fe, config, _ = _whisper_parts()
    config.num_labels = 2
    model = transformers.WhisperForAudioClassification(config).eval()
    return transformers.pipeline("audio-classification", model=model, feature_extractor=fe, device="cpu")


def _clip_config(tokenizer):
    text = dict(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=32,
        eos_token_id=tokenizer.sep_token_id,  # CLIP's text tower pools at its end-of-text token
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
    )
    vision = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    return transformers.CLIPConfig(
        text_config=text, vision_config={**vision, "intermediate_size": 37}, projection_dim=16
    )


def _clip_processor():
    return transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="session")
def clip_pipe(tokenizer):
    pytest.importorskip("PIL")
    torch.manual_seed(7)
    model = transformers.CLIPModel(_clip_config(tokenizer)).eval()
    return transformers.pipeline(
        "zero-shot-image-classification",
        model=model,
        tokenizer=tokenizer,
        image_processor=_clip_processor(),
        device="cpu",
    )


@pytest.fixture(scope="session")
def image_feature_pipe(tokenizer):
    pytest.importorskip("PIL")
    torch.manual_seed(8)
    model = transformers.CLIPVisionModelWithProjection(_clip_config(tokenizer).vision_config).eval()
    return transformers.pipeline(
        "image-feature-extraction", model=model, image_processor=_clip_processor(), device="cpu"
    )


@pytest.fixture(scope="session")
def zero_shot_pipe(tokenizer):
    torch.manual_seed(9)
    labels = {0: "entailment", 1: "neutral", 2: "contradiction"}
    config = bert_config(tokenizer, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    model = transformers.BertForSequenceClassification(config).eval()
    return transformers.pipeline("zero-shot-classification", model=model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="session")
def detection_pipe():
    pytest.importorskip("PIL")
    torch.manual_seed(10)
    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"])
    config = transformers.DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        num_queries=5,
        num_labels=3,
    )
    model = transformers.DetrForObjectDetection(config).eval()
    processor = transformers.DetrImageProcessor(size={"shortest_edge": 32, "longest_edge": 48})
    return transformers.pipeline("object-detection", model=model, image_processor=processor, device="cpu")
