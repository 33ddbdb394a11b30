"""The README's examples, run as written.

Each ```python block runs in one namespace, in the README's order, in a temporary directory. Only what the README
leaves to the reader is supplied: the placeholders (``RECORDED_FROM_TORCH``, ``embedding``, ``texts``,
``send_to_labelling`` ...), a tiny local model where it says ``model="..."`` (the integration blocks, in
``tests/chroma_integrations/test_readme_examples.py``), and ``/tmp/`` pointed at the test's own directory. The
shell block's commands run as a subprocess with ``<ID>``, ``<BASE64_EMBEDDING>`` and ``FILE`` filled in.
A README edit that breaks an example breaks this test.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import chroma
from tests.conftest import clusters

README = Path(__file__).resolve().parent.parent / "README.md"
SET = dict(model="user-exp-abc", model_version="123", layer="context")


def blocks(language: str) -> list[str]:
    text = README.read_text()
    return [m.group(1) for m in re.finditer(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)]


def block_with(marker: str) -> str:
    found = [b for b in blocks("python") if marker in b]
    assert len(found) == 1, f"the README should hold one python block with {marker!r}"
    return found[0]


def _train_set(dim: int = 32) -> np.ndarray:
    """Training data for the README's set, so that its query examples get real answers."""
    x, labels, _ = clusters(n_per=40, dim=dim)
    with chroma.TrainingSession(embedding_set=SET) as session:
        session.log(input_uri=[f"/train/{i}" for i in range(len(x))], embedding=x, label=labels)
    return x


def test_python_blocks_cover_the_readme():
    # Every python block is run by a test here or in tests/chroma_integrations/test_readme_examples.py.
    markers = [
        "session.bufferlocal",
        "chroma.QuerySession(",
        "chroma.select(",
        "chroma.log(",
        "ChromaPipeline(",
        "chroma_mlflow.autolog()",
        "@recommend(",
    ]
    assert len(blocks("python")) == len(markers)
    for marker in markers:
        block_with(marker)


def test_core_examples(tmp_path):
    x = _train_set()
    labelled: list[str] = []
    ns: dict[str, object] = {
        "RECORDED_FROM_TORCH": x[3] + 0.01,
        "SERIALIZABLE_DICTS": [{"label": "c0", "score": 0.93}],
        "embedding": np.full(32, 3.0, dtype=np.float32),  # far from every training cluster: novel
        "outputs": [{"label": "c1", "score": 0.51}],
        "send_to_labelling": labelled.append,
    }
    training = block_with("session.bufferlocal").replace('"/tmp/', f'"{tmp_path}/')
    exec(compile(training, "README:training", "exec"), ns)
    assert glob.glob(str(tmp_path / "chroma-user-exp-abc-context-*.jsonl"))

    exec(compile(block_with("chroma.QuerySession("), "README:query", "exec"), ns)
    result = ns["result"]
    assert isinstance(result, chroma.QueryResult) and result.training_recommended
    assert labelled == ["/images/999.png"]
    ns["session"].flush()  # type: ignore[attr-defined]

    exec(compile(block_with("chroma.select("), "README:select", "exec"), ns)
    assert "/images/999.png" in labelled[1:]
    assert Path("context-set.parquet").stat().st_size > 0

    exec(compile(block_with("chroma.log("), "README:without a session", "exec"), ns)
    info = {s.id: s for s in chroma.TrainingSession(embedding_set=SET).transport.list_sets()}
    assert info[chroma.embedding_set_id(SET)].training == len(x) + 2  # the README's two training records


def test_configuration_example_is_valid_json():
    (config,) = blocks("json")
    assert set(json.loads(config)) <= {
        "api_key",
        "application_id",
        "chroma_url",
        "http_proxy",
        "persist_directory",
        "store_url",
    }


def test_command_line_examples(tmp_path):
    x = _train_set()
    batch = tmp_path / "batch.jsonl"
    with chroma.TrainingSession(embedding_set=SET) as session:
        session.bufferlocal(file=str(batch))
        session.log(input_uri="/more/1", embedding=x[0] + 0.02)
    chroma.QuerySession(embedding_set=SET).log(input_uri="/prod/1", embedding=np.full(32, 3.0, dtype=np.float32))
    set_id = chroma.embedding_set_id(SET)
    b64 = base64.b64encode(x[5].astype("<f4").tobytes()).decode()
    (shell,) = blocks("shell")
    ran = 0
    for line in shell.splitlines():
        if not line.startswith("> python3 -m chroma "):
            continue
        command = line[2:].split("  #")[0].strip()
        if "upload-training" in command:
            command = f"python3 -m chroma upload-training {batch}"  # the README names a file of its own
        command = command.replace("<ID>", set_id[:8]).replace("<BASE64_EMBEDDING>", b64).replace("FILE", str(batch))
        args = command.split()[1:]
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ}, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if "should-upload" in command:
            assert json.loads(done.stdout)["recommendation"] == "not_useful"
        ran += 1
    assert ran == 8
    assert Path("set.parquet").stat().st_size > 0
