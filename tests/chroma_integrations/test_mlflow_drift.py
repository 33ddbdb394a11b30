"""autolog(): each window of a chroma.drift report becomes an MLflow metric step (sqlite tracking store)."""

from __future__ import annotations

import numpy as np
import pytest

import chroma
from tests.chroma_core.drift.helpers import DAY, T0, blobs, log_window, training_set

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

import chroma_integrations.mlflow as chroma_mlflow  # noqa: E402


@pytest.fixture
def tracked(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls to addresses other than 127.0.0.1
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    chroma_mlflow.autolog(disable=True)
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def watched(tmp_path):
    """Three days of production: two like training, then one that mixes in a new region."""
    transport, es, known, novel = training_set(tmp_path, n=600)
    rng = np.random.default_rng(3)
    for day in range(3):
        shifted = 40 if day == 2 else 0
        v = np.concatenate([blobs(rng, known, 100 - shifted), blobs(rng, novel, shifted)])
        log_window(transport, es, v, T0 + day * DAY, f"day{day}")
    return transport, es


def _history(run_id: str, key: str) -> list[tuple[int, float, int]]:
    return sorted((m.step, m.value, m.timestamp) for m in MlflowClient().get_metric_history(run_id, key))


def test_each_window_is_a_metric_step_with_its_share_and_verdict(tracked, watched):
    transport, es = watched
    chroma_mlflow.autolog()
    with mlflow.start_run() as run:
        report = chroma.drift(es, "1d", since=T0, until=T0 + 4 * DAY, transport=transport)
    assert [w.verdict for w in report.windows] == ["no_drift", "no_drift", "drift", "empty"]
    prefix = f"chroma.drift.{es.id[:12]}."
    first_step = int(T0 // DAY)
    drifted = _history(run.info.run_id, prefix + "drifted")
    assert [(s, v) for s, v, _ in drifted] == [(first_step, 0.0), (first_step + 1, 0.0), (first_step + 2, 1.0)]
    assert [t for _, _, t in drifted] == [int((T0 + (d + 1) * DAY) * 1000) for d in range(3)]  # window ends
    ood = _history(run.info.run_id, prefix + "ood_share")
    assert [v for _, v, _ in ood] == pytest.approx([w.ood_share for w in report.windows[:3]])
    counts = _history(run.info.run_id, prefix + "count")
    assert [(s, v) for s, v, _ in counts] == [(first_step + d, c) for d, c in enumerate([100.0, 100.0, 100.0, 0.0])]
    mmd_p = _history(run.info.run_id, prefix + "mmd_p_value")
    assert len(mmd_p) == 3 and mmd_p[2][1] < 0.025  # the empty window has no test figures
    assert len(_history(run.info.run_id, prefix + "reference_share")) == 3


def test_no_run_or_autolog_off_logs_nothing(tracked, watched):
    transport, es = watched
    chroma_mlflow.autolog()
    chroma.drift(es, "1d", since=T0, until=T0 + 3 * DAY, transport=transport)  # no active run: nothing to log into
    assert mlflow.active_run() is None
    chroma_mlflow.autolog(disable=True)
    with mlflow.start_run() as run:
        chroma.drift(es, "1d", since=T0, until=T0 + 3 * DAY, transport=transport)
    assert mlflow.get_run(run.info.run_id).data.metrics == {}


def test_autolog_of_another_set_logs_none_of_this_ones_drift(tracked, watched):
    transport, es = watched
    chroma_mlflow.autolog({"model": "another", "model_version": "1", "layer": "x"})
    with mlflow.start_run() as run:
        chroma.drift(es, "1d", since=T0, until=T0 + 3 * DAY, transport=transport)
    assert mlflow.get_run(run.info.run_id).data.metrics == {}
