"""object-detection (tiny DETR, ResNet backbone, no timm): ``boxes=True`` logs one vector per kept box, the decoder
state of the query that predicted it, computed here from the model; the default stays one vector per image."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import chroma
from chroma_core.errors import ChromaError
from chroma_integrations.transformers import ChromaPipeline, UnsupportedPipelineError, default_input_uri
from tests.chroma_integrations.conftest import images
from tests.chroma_integrations.test_transformers_kinds import Calls, buffered

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def detr(detection_pipe):
    """The tiny DETR with query embeddings spread out: untrained, its queries otherwise give the same decoder state
    to four decimals, and a box matched to the wrong query would go unnoticed."""
    model = copy.deepcopy(detection_pipe.model)
    torch.manual_seed(12)
    with torch.no_grad():
        model.model.query_position_embeddings.weight.normal_(std=3.0)
    return transformers.pipeline(
        "object-detection", model=model, image_processor=detection_pipe.image_processor, device="cpu"
    )


def decoder_queries(pipe, image):
    """One image alone through the detector: each query's decoder state, best class score and label."""
    inputs = pipe.image_processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        out = pipe.model(**inputs)
    scores, labels = out.logits.softmax(-1)[0, :, :-1].max(-1)
    return out.last_hidden_state[0].numpy(), scores.numpy(), labels.numpy()


def middle_threshold(pipe, inputs):
    """A threshold that keeps some queries of each image and drops others."""
    scores = np.concatenate([decoder_queries(pipe, x)[1] for x in inputs])
    return float(np.median(scores))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_one_vector_per_kept_box_the_decoder_state_of_its_query(detr, batch_size):
    detection_pipe = detr
    inputs = images(3, seed=4)
    threshold = middle_threshold(detection_pipe, inputs)
    bare = detection_pipe(inputs, batch_size=batch_size, threshold=threshold)
    calls = Calls(detection_pipe.model)
    w = ChromaPipeline(detection_pipe, boxes=True)
    try:
        out = w(inputs, batch_size=batch_size, threshold=threshold)
    finally:
        w.close()
        calls.close()
    assert out == bare and calls.n == -(-len(inputs) // batch_size)  # the detector ran once per batch
    kept = [len(boxes) for boxes in out]
    assert 0 < sum(kept) < len(inputs) * detection_pipe.model.config.num_queries  # some boxes dropped
    want, uris, names = [], [], []
    for image, boxes in zip(inputs, out, strict=True):
        states, scores, labels = decoder_queries(detection_pipe, image)
        queries = np.flatnonzero(scores > threshold)  # the pipeline keeps these, in query order
        assert [detection_pipe.model.config.id2label[int(labels[q])] for q in queries] == [b["label"] for b in boxes]
        assert (
            np.abs(states[:, None] - states[None]).max(-1)[~np.eye(len(states), dtype=bool)].min() > 1e-3
        )  # 10x the tolerance below
        want.extend(states[queries])
        uris.extend(f"{default_input_uri(image)}#box{k}" for k in range(len(boxes)))
        names.extend(boxes)
    vectors, got_uris, previews = buffered(w)
    assert vectors.shape == (sum(kept), detection_pipe.model.config.d_model)
    # The pipeline preprocesses each image on its own path: its pixels, then states, differ in low bits.
    np.testing.assert_allclose(vectors, np.stack(want), rtol=1e-4, atol=1e-4)
    assert got_uris == uris
    assert list(w.session._default.inferences) == names  # each record's inferences: its box, label and score
    assert (
        previews[0].startswith(f"{names[0]['label']} {names[0]['score']:.2f} at (") and "image 40x40 RGB" in previews[0]
    )
    es = w.embedding_set
    assert es["layer"] == "decoder_last" and es["pooling"] == "box" and es["task"] == "object-detection"


def test_default_stays_one_pooled_vector_per_image(detection_pipe):
    inputs = images(3, seed=4)
    w = ChromaPipeline(detection_pipe)
    w(inputs, threshold=0.0)
    w.close()
    vectors, uris, _ = buffered(w)
    assert vectors.shape == (3, detection_pipe.model.config.d_model) and uris == [default_input_uri(x) for x in inputs]
    assert w.embedding_set["layer"] == "last"


def test_boxes_in_query_mode_answer_per_box(detection_pipe):
    inputs = images(6, seed=5)
    trainer = ChromaPipeline(detection_pipe, boxes=True)
    trainer(inputs, threshold=0.0)  # every query kept: 30 boxes, past min_training
    trainer.save()
    trainer.close()
    seen = []
    q = ChromaPipeline(
        detection_pipe, boxes=True, mode="query", return_results=True, on_result=lambda *a: seen.append(a)
    )
    ((output, results),) = q([inputs[0]], threshold=0.0)
    q.close()
    assert output == detection_pipe(inputs[0], threshold=0.0)
    assert len(results) == len(output) == detection_pipe.model.config.num_queries
    assert all(isinstance(r, chroma.QueryResult) for r in results)
    uri = default_input_uri(inputs[0])
    # Asked again, each box's nearest training inputs are this image's boxes (an untrained DETR's queries give
    # nearly the same state, so the order among them is a tie; the image tells them from the other images' boxes).
    own = {f"{uri}#box{k}" for k in range(len(output))}
    assert all({n.input_uri for n in r.nearest} == own and r.nearest[0].similarity > 0.999 for r in results)
    assert [(box, r) for _, box, r in seen] == list(zip(output, results, strict=True))


def test_boxes_refused_where_they_cannot_be_matched(detection_pipe, text_pipe):
    with pytest.raises(UnsupportedPipelineError, match="object-detection"):
        ChromaPipeline(text_pipe, boxes=True)
    w = ChromaPipeline(detection_pipe, boxes=True)
    with pytest.raises(ChromaError, match="boxes=True"):
        w(images(1), labels=["cat"])
    w.close()
    assert w.session.pending == 0


def test_boxes_for_one_image_given_alone(detection_pipe):
    image = images(1, seed=6)[0]
    w = ChromaPipeline(detection_pipe, boxes=True, preview=False)
    out = w(image, threshold=0.0)
    w.close()
    assert out == detection_pipe(image, threshold=0.0)
    vectors, uris, previews = buffered(w)
    assert len(vectors) == len(out) == detection_pipe.model.config.num_queries
    assert uris[0] == f"{default_input_uri(image)}#box0" and previews == [None] * len(out)
