"""The README's integration examples (pipelines, MLflow, serving), run as written on the tiny text model.

The README's core examples, and the parsing of its blocks, are in ``tests/test_readme.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_readme import block_with


def test_integration_examples(text_model_dir, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # an earlier test may have set one, now stopped
    texts = ["the movie was great", "the plot was awful", "a good movie", "a bad plot"] * 6
    ns: dict[str, object] = {"texts": texts, "TINY_MODEL": text_model_dir, "mlflow": mlflow}
    hf = block_with("ChromaPipeline(").replace('model="..."', "model=TINY_MODEL")
    exec(compile(hf, "README:pipelines", "exec"), ns)
    assert len(ns["outputs"]) == len(texts)  # type: ignore[arg-type]

    ml = block_with("chroma_mlflow.autolog()")
    try:
        exec(compile(ml, "README:mlflow", "exec"), ns)
        embeddings = ns["chroma_mlflow"].load_embeddings(ns["run"].info.run_id)  # type: ignore[attr-defined]
        assert [e.vectors.shape[0] for e in embeddings.values()] == [len(texts)]
    finally:
        ns["chroma_mlflow"].autolog(disable=True)  # type: ignore[attr-defined]
        mlflow.set_tracking_uri(previous)

    calls: list[object] = []
    ns["encode"] = lambda x: (calls.append(x), np.full(32, 1.0, dtype=np.float32))[1]
    exec(compile(block_with("@recommend("), "README:serving", "exec"), ns)
    assert ns["predict"]({"id": "p1"}) is None  # the README's predict is `...`: it returns None, unchanged
    assert calls == [{"id": "p1"}]
