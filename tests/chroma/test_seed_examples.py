"""The client design's examples, as written (with the seed's pseudo-dicts spelled as real dicts)."""

from __future__ import annotations

import glob
import json

import numpy as np

import chroma
from tests.conftest import clusters

RECORDED_FROM_TORCH = np.random.default_rng(1).normal(size=32).astype(np.float32)
SERIALIZABLE_DICTS = {"label": "c0", "score": 0.93}


def _train(n_per: int = 60):
    x, labels, _ = clusters(n_per=n_per)
    session = chroma.TrainingSession(embedding_set=dict(model="user-exp-abc", model_version="123", layer="context"))
    for i, (v, lab) in enumerate(zip(x, labels, strict=True)):
        session.log(input_uri=f"/images/{i}.png", embedding=v, inferences={"label": lab, "score": 0.9})
    session.save()
    return x


def test_global_log_training_then_query(tmp_path):
    (tmp_path / "chroma.json").write_text(json.dumps({"api_key": "secret-456", "application_id": "Customer-123"}))
    x = _train()
    result = chroma.log(
        chroma_config="",  # default: ./chroma.json
        chroma_json="",
        chroma_server_url="",  # no URL: the embedded engine
        api_key="",
        input_uri="/images/123.png",
        embedding=RECORDED_FROM_TORCH,
        embedding_set=dict(model="user-exp-abc", model_version="123", layer="context"),
        training_mode=True,
    )
    assert result is None
    infos = {s.id: s for s in chroma.TrainingSession(embedding_set={"m": 1}).transport.list_sets()}
    assert (
        infos[chroma.embedding_set_id({"model": "user-exp-abc", "model_version": "123", "layer": "context"})].training
        == len(x) + 1
    )

    answer = chroma.log(
        input_uri="/images/124.png",
        embedding=x[0],
        embedding_set=dict(model="user-exp-abc", model_version="123", layer="context"),
        training_mode=False,
    )
    assert isinstance(answer, chroma.QueryResult) and answer.not_useful


def test_batching_example(tmp_path):
    session = chroma.TrainingSession(embedding_set=dict(model="user-exp-abc", model_version="123", layer="context"))
    session.bufferlocal(file=str(tmp_path / "chroma-$model-$layer-$timestamp.jsonl"))
    session.log(input_uri="/images/123.png", embedding=RECORDED_FROM_TORCH, inferences=SERIALIZABLE_DICTS)
    session.save()
    (path,) = glob.glob(str(tmp_path / "chroma-user-exp-abc-context-*.jsonl"))
    with open(path) as f:
        header = json.loads(f.readline())
    assert header["embedding_set"] == {"model": "user-exp-abc", "model_version": "123", "layer": "context"}


def test_query_session_example():
    x = _train()
    session = chroma.QuerySession(embedding_set=dict(model="user-exp-abc", model_version="123", layer="context"))
    stored_for_labelling, dropped = [], []
    far = np.full(32, 5.0, dtype=np.float32)
    for uri, emb in [("/images/dup.png", x[7]), ("/images/far.png", far)]:
        result = session.log(input_uri=uri, embedding=emb)
        if result.training_recommended:
            stored_for_labelling.append(result.input_uri)
        if result.not_useful:
            dropped.append(result.input_uri)
    assert stored_for_labelling == ["/images/far.png"]
    assert dropped == ["/images/dup.png"]
    assert set(chroma.QueryResult.__dataclass_fields__) >= {
        "input_uri",
        "recommendations",
        "training_recommended",
        "not_useful",
    }
