"""Tiny real models, built from configs, with tokenizers made from a vocab the test writes."""

from __future__ import annotations

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
