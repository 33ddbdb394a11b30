from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import chroma
from chroma_core.errors import UnknownEmbeddingSetError
from tests.conftest import clusters

pytestmark = pytest.mark.slow
TRAIN = {"model": "m", "split": "train"}
TEST = {"model": "m", "split": "test"}


def test_duplicates_through_the_service(chroma_server):
    x, _, _ = clusters(n_per=30, dim=16, seed=5)
    url = chroma_server.url
    with chroma.TrainingSession(embedding_set=TRAIN, chroma_server_url=url) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))] + ["/t/copy"], embedding=np.concatenate([x, x[[3]]]))
    with chroma.TrainingSession(embedding_set=TEST, chroma_server_url=url) as s:
        s.log(input_uri=["/test/0", "/test/1"], embedding=np.stack([x[8] * 1.001, x[9] + 4.0]))
    report = chroma.duplicates(TRAIN, against=TEST, chroma_server_url=url)
    assert [sorted(g.input_uris) for g in report.groups] == [["/t/3", "/t/copy"]]
    assert [(c.input_uri, c.training_uri) for c in report.leaks] == [("/test/0", "/t/8")]
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.duplicates("ab" * 20, chroma_server_url=url)
