"""Drift and clusters over the service: the same reports as embedded, behind the application's own keys."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import requests

import chroma
from chroma_core.config import load_config
from chroma_core.errors import ConfigError, UnknownEmbeddingSetError
from chroma_core.transport import transport_for
from tests.chroma_core.drift.helpers import DAY, T0, blobs, log_window, training_set

pytestmark = pytest.mark.slow


def _client(tenant):
    return transport_for(load_config(chroma_url=tenant.url, api_key=tenant.key))


@pytest.fixture
def watched(keyed_server, tmp_path):
    alpha = keyed_server.alpha
    transport, es, known, novel = training_set(tmp_path, n=400, transport=_client(alpha))
    rng = np.random.default_rng(3)
    log_window(transport, es, blobs(rng, known, 100), T0, "calm")
    log_window(transport, es, np.concatenate([blobs(rng, known, 60), blobs(rng, novel, 40)]), T0 + DAY, "new")
    return keyed_server, transport, es


def test_drift_and_clusters_over_http(watched):
    servers, transport, es = watched
    report = chroma.drift(es.id, "1d", since=T0, until=T0 + 2 * DAY, transport=transport)
    assert [w.verdict for w in report.windows] == ["no_drift", "drift"]
    assert report.windows[1].clusters[0].examples[0].input_uri.startswith("new/")
    assert report.reference == 100
    clusters = chroma.clusters(es.id, 8, transport=transport)
    assert sum(c.production for c in clusters.clusters) == 200 and clusters.training == 400


def test_bad_input_over_http(watched):
    servers, transport, es = watched
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.drift("0" * 40, "1d", transport=transport)
    with pytest.raises(ConfigError):
        transport._json("POST", f"/sets/{es.id}/drift", "drift", {"window": "1 fortnight"})
    response = requests.post(
        f"{servers.url}/v1/sets/{es.id}/drift", json={"alpha": 2}, headers=servers.alpha.headers, timeout=10
    )
    assert response.status_code == 422


def test_another_applications_key_sees_no_data(watched):
    servers, transport, es = watched
    other = _client(servers.beta)
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.drift(es.id, "1d", transport=other)
    with pytest.raises(UnknownEmbeddingSetError):
        chroma.clusters(es.id, transport=other)
    response = requests.post(f"{servers.url}/v1/sets/{es.id}/drift", json={}, timeout=10)
    assert response.status_code == 401
