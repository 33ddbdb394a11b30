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


def test_the_answers_follow_the_documented_response_models(watched):
    from chroma_core.server.schema_watch import ClusterReportOut, DriftOut

    servers, _, es = watched
    headers = servers.alpha.headers
    body = {"window": "1d", "since": T0, "until": T0 + 3 * DAY}  # the third day is empty: no verdict
    drift = requests.post(f"{servers.url}/v1/sets/{es.id}/drift", json=body, headers=headers, timeout=60).json()
    report = DriftOut.model_validate(drift)
    assert [w.verdict for w in report.windows] == ["no_drift", "drift", "empty"]
    clusters = requests.post(f"{servers.url}/v1/sets/{es.id}/clusters", json={"k": 8}, headers=headers, timeout=60)
    assert ClusterReportOut.model_validate(clusters.json()).clusters
    schema = requests.get(f"{servers.url}/openapi.json", timeout=10).json()
    ok = schema["paths"]["/v1/sets/{set_id}/drift"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/DriftOut")


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


def _metrics(tenant) -> dict[str, float]:
    response = requests.get(f"{tenant.url}/metrics", headers=tenant.headers, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families

    return {
        f"{s.name}{{{s.labels.get('set', '')}}}": s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_show_counts_and_the_newest_drift_of_the_callers_sets_only(watched):
    servers, transport, es = watched
    before = _metrics(servers.alpha)
    assert before[f"chroma_training_records{{{es.id}}}"] == 400
    assert before[f"chroma_production_records{{{es.id}}}"] == 200
    assert f"chroma_drift_detected{{{es.id}}}" not in before  # no drift computed yet: none invented
    report = chroma.drift(es.id, "1d", since=T0, until=T0 + 2 * DAY, transport=transport)
    after = _metrics(servers.alpha)
    newest = report.windows[-1]
    assert after[f"chroma_drift_detected{{{es.id}}}"] == 1.0
    assert after[f"chroma_drift_ood_share{{{es.id}}}"] == pytest.approx(newest.ood_share)
    assert after[f"chroma_drift_mmd_p_value{{{es.id}}}"] == pytest.approx(newest.mmd_p_value)
    assert after[f"chroma_drift_window_end_timestamp_seconds{{{es.id}}}"] == pytest.approx(newest.end)
    # An older range computed later does not replace the newest figures.
    chroma.drift(es.id, "1d", since=T0, until=T0 + DAY, transport=transport)
    assert _metrics(servers.alpha)[f"chroma_drift_detected{{{es.id}}}"] == 1.0
    # Another application's key sees none of it; no key at all is refused.
    assert not [k for k in _metrics(servers.beta) if es.id in k]
    assert requests.get(f"{servers.url}/metrics", timeout=10).status_code == 401
