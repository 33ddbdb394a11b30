from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest

import chroma
from chroma_core.cli import main
from tests.conftest import SET, clusters

SET_ID = chroma.embedding_set_id(SET)


def b64(v) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


@pytest.fixture
def batch_file(tmp_path):
    x, labels, _ = clusters(n_per=30, dim=8)
    s = chroma.TrainingSession(SET)
    s.bufferlocal(file=str(tmp_path / "chroma-$model-$layer-$timestamp.jsonl"))
    s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x, label=labels)
    (saved,) = s.save(upload=False)
    return saved.path, x


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "chroma", *args], capture_output=True, text=True, cwd=cwd)


def test_upload_training_then_should_upload_single_dash(batch_file, tmp_path):
    path, x = batch_file
    out = run("upload-training", str(path))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["read"], report["stored"], report["ok"]) == (150, 150, True)
    again = json.loads(run("upload-training", str(path)).stdout)
    assert again["stored"] == 0 and again["duplicates"] == 150

    out = run("should-upload", f"-embedding_set={SET_ID}", b64(x[3]))
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["recommendation"] == "not_useful" and answer["not_useful"] is True
    far = run("should-upload", "--embedding-set", SET_ID, b64(np.full(8, 9.0)), "--input-uri", "/far")
    assert json.loads(far.stdout)["recommendation"] == "training_recommended"
    as_list = run("should-upload", "-embedding_set", SET_ID, json.dumps(x[3].tolist()))
    assert json.loads(as_list.stdout)["recommendation"] == "not_useful"


def test_sets_and_inspect(batch_file, capsys):
    path, _ = batch_file
    assert main(["sets"]) == 0
    assert "no embedding sets yet" in capsys.readouterr().out
    main(["upload-training", str(path)])
    capsys.readouterr()
    assert main(["sets", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert (info["id"], info["training"], info["dimension"]) == (SET_ID, 150, 8)
    assert main(["inspect", str(path)]) == 0
    inspected = json.loads(capsys.readouterr().out)
    assert inspected["valid"] and inspected["records"] == 150 and inspected["header"]["set_id"] == SET_ID


def test_upload_of_a_damaged_file_keeps_good_lines(batch_file, capsys):
    path, _ = batch_file
    lines = path.read_bytes().splitlines(keepends=True)
    lines[5] = b"{broken\n"
    path.write_bytes(b"".join(lines[:-1]))  # and no trailer
    assert main(["upload-training", str(path)]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["stored"] == 149 and not report["ok"]
    assert report["problems"][0].startswith("line 6: not valid JSON")
    assert any("no trailer" in p for p in report["problems"])
    assert main(["inspect", str(path)]) == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["should-upload", "-embedding_set=" + "0" * 40, b64([1.0] * 8)], 1, "unknown embedding set"),
        (["should-upload", "-embedding_set=x", "not*base64"], 1, "not valid base64"),
        (["should-upload", "-embedding_set=x", base64.b64encode(b"abc").decode()], 1, "whole number of float32"),
        (["upload-training", "missing.jsonl"], 1, "does not exist"),
        (["should-upload", b64([1.0])], 2, "required"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_and_exit_codes(args, code, message, capsys):
    if code == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
    else:
        assert main(args) == code
    assert message in capsys.readouterr().err


def test_upload_training_refuses_production_batches(tmp_path, capsys):
    from chroma_core.batch_format import write_batch
    from chroma_core.embedding_set import EmbeddingSet
    from chroma_core.records import BatchHeader, Records

    header = BatchHeader("p1", EmbeddingSet.from_dict(SET), "production", 2, "t")
    write_batch(
        tmp_path / "p.jsonl", header, Records(np.ones((1, 2), np.float32), ["a"], ["/a"], [None], [None], [0.0])
    )
    assert main(["upload-training", str(tmp_path / "p.jsonl")]) == 1
    assert "chroma upload" in capsys.readouterr().err
    assert main(["upload", str(tmp_path / "p.jsonl")]) == 0


@pytest.mark.parametrize("command", ["upload-training", "upload", "should-upload", "sets", "inspect"])
def test_help_on_every_command(command):
    out = run(command, "--help")
    assert out.returncode == 0 and "exit codes" in out.stdout


def test_reading_commands_never_create_a_store_and_say_which_they_read(tmp_path, capsys):
    assert main(["sets"]) == 0
    out = capsys.readouterr().out
    assert f"0 embedding set(s) in the embedded store at {tmp_path / '.chroma'}" in out
    assert not (tmp_path / ".chroma").exists()
    for argv in (["select", "--set", "0" * 8], ["export", "--set", "0" * 8, "-o", "x.jsonl"]):
        assert main(argv) == 1
        assert "there is no Chroma data here" in capsys.readouterr().err
    assert not (tmp_path / ".chroma").exists()
