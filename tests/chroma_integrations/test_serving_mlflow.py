"""A real MLflow pyfunc model, decorated with @recommend, served by `mlflow models serve` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import chroma
from tests.conftest import ROOT, ChromaServer, free_port, wait_until_serving

mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.slow


def test_served_pyfunc_predicts_as_undecorated_and_the_service_holds_the_records(tmp_path):
    from tests.chroma_integrations.serving_model import EMBEDDING_SET, FEATURES, ChromaModel, PlainModel

    chroma_server = ChromaServer(tmp_path / "chroma-data").start()
    model_path = tmp_path / "model"
    mlflow.pyfunc.save_model(str(model_path), python_model=ChromaModel())
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CHROMA_URL": chroma_server.url,
        "CHROMA_PERSIST_DIRECTORY": str(tmp_path / "serving-spill"),
        "MLFLOW_TRACKING_URI": str(tmp_path / "mlruns"),
        # mlflow execs `uvicorn` by name: this interpreter's scripts must come first on PATH
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_DISABLE_TELEMETRY": "true",  # no calls to addresses other than 127.0.0.1
    }
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            exe,
            "models",
            "serve",
            "-m",
            str(model_path),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--env-manager",
            "local",
            "-w",
            "1",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url + "/ping", proc, tmp_path / "serve.log", 60, "mlflow models serve")
        rng = np.random.default_rng(0)
        total = 0
        for chunk in range(5):
            df = pd.DataFrame(rng.normal(size=(40, 8)).astype(np.float32), columns=FEATURES)
            df["id"] = np.arange(chunk * 40, chunk * 40 + 40)
            body = json.dumps({"dataframe_split": json.loads(df.to_json(orient="split", index=False))}).encode()
            req = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                served = json.loads(r.read())["predictions"]
            expected = PlainModel().predict(None, df)
            np.testing.assert_allclose(served, expected, rtol=1e-5)
            total += len(df)
        transport = chroma.QuerySession(EMBEDDING_SET, chroma_server_url=chroma_server.url).transport
        deadline = time.monotonic() + 30
        production = 0
        while time.monotonic() < deadline:
            info = transport.get_set(chroma.embedding_set_id(EMBEDDING_SET))
            production = 0 if info is None else info.production
            if production >= total:
                break
            time.sleep(0.2)
        assert production == total
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        chroma_server.stop()
