from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chroma
from chroma_core.batch_format import read_batch
from chroma_core.errors import (
    DimensionMismatchError,
    InvalidEmbeddingError,
    InvalidEmbeddingSetError,
    InvalidPathError,
    NothingToSaveError,
)
from tests.conftest import ROOT, SET, clusters


def training_count(set_dict=SET) -> int:
    info = chroma.TrainingSession(set_dict).transport.get_set(chroma.embedding_set_id(set_dict))
    return 0 if info is None else info.training


def test_nothing_is_stored_until_save():
    session = chroma.TrainingSession(embedding_set=SET)
    session.log(input_uri="/a", embedding=np.ones(4, np.float32))
    assert training_count() == 0 and session.pending == 1
    saved = session.save()
    assert training_count() == 1 and session.pending == 0
    assert saved[0].count == 1 and saved[0].upload is not None and saved[0].upload.stored == 1


def test_save_with_nothing_logged():
    session = chroma.TrainingSession(embedding_set=SET)
    with pytest.raises(NothingToSaveError, match="call log"):
        session.save()
    session.log(input_uri="/a", embedding=[1.0, 2.0])
    session.save()
    with pytest.raises(NothingToSaveError):
        session.save()


def test_context_manager_saves_on_exit_and_keeps_user_exception(caplog):
    with chroma.TrainingSession(embedding_set=SET) as s:
        s.log(input_uri="/a", embedding=[1.0, 2.0])
    assert training_count() == 1
    with pytest.raises(KeyError, match="mine"), chroma.TrainingSession(embedding_set=SET) as s:
        s.log(input_uri="/b", embedding=[1.0, 2.0])
        raise KeyError("mine")
    assert training_count() == 2  # what was logged before the error is not lost


def test_inputs_numpy_list_torch_and_batches():
    torch = pytest.importorskip("torch")
    s = chroma.TrainingSession(embedding_set=SET)
    s.log(input_uri="/np64", embedding=np.arange(4, dtype=np.float64))
    s.log(input_uri="/list", embedding=[0.0, 1.0, 2.0, 3.0])
    s.log(input_uri="/row", embedding=np.arange(4, dtype=np.float32)[None, :])
    t = torch.arange(4, dtype=torch.bfloat16, requires_grad=False)
    s.log(input_uri="/torch-bf16", embedding=t)
    s.log(input_uri="/torch-grad", embedding=torch.arange(4.0, requires_grad=True) * 1)
    s.log(
        input_uri=["/b0", "/b1", "/b2"],
        embedding=torch.ones(3, 4),
        inferences=[{"i": 0}, {"i": 1}, {"i": 2}],
        label=["x", "y", "z"],
    )
    s.log(input_uri=("/t0", "/t1"), embedding=np.ones((2, 4), np.float32))
    (saved,) = s.save()
    assert saved.count == 10


def test_logged_vectors_are_copied():
    s = chroma.TrainingSession(embedding_set=SET)
    s.bufferlocal(file="out/b-$timestamp.jsonl")
    buf = np.ones(4, np.float32)
    for i in range(3):
        buf[:] = i + 1
        s.log(input_uri=f"/{i}", embedding=buf)  # the caller reuses its buffer, as torch loops do
    (saved,) = s.save()
    _, records, _ = read_batch(saved.path)
    np.testing.assert_array_equal(records.vectors[:, 0], [1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(input_uri="/a", embedding=[1.0, float("nan"), 2.0, 3.0]), InvalidEmbeddingError, "non-finite.*nan"),
        (dict(input_uri="/a", embedding=np.array([1, np.inf, 0, 0], np.float32)), InvalidEmbeddingError, "non-finite"),
        (dict(input_uri="/a", embedding=[1e300, 0, 0, 0]), InvalidEmbeddingError, "non-finite"),
        (dict(input_uri="/a", embedding=[1.0, 2.0, 3.0]), DimensionMismatchError, "dimension 3.*4-dimensional"),
        (dict(input_uri="/a", embedding=np.zeros((2, 2, 2))), InvalidEmbeddingError, "1-d"),
        (dict(input_uri="/a", embedding=np.zeros(4, np.float32)), InvalidEmbeddingError, "all zeros"),
        (dict(input_uri=["/a", "/b"], embedding=[[1.0, 2.0], [0.0, 0.0]]), InvalidEmbeddingError, r"all zeros \(row 1"),
        (dict(input_uri="/a", embedding="0.1,0.2"), InvalidEmbeddingError, "real numbers|cannot be read"),
        (dict(input_uri="", embedding=[1.0, 2, 3, 4]), InvalidEmbeddingError, "non-empty"),
        (dict(input_uri=["/a"], embedding=np.ones((2, 4))), InvalidEmbeddingError, "1 input_uri values for 2"),
        (dict(input_uri=5, embedding=[1.0, 2, 3, 4]), InvalidEmbeddingError, "must be a string"),
    ],
)
def test_bad_input_is_refused_and_nothing_accepted_is_lost(kwargs, error, match):
    s = chroma.TrainingSession(embedding_set=SET)
    s.log(input_uri="/good", embedding=np.ones(4, np.float32))
    with pytest.raises(error, match=match):
        s.log(**kwargs)
    assert s.pending == 1
    s.save()
    assert training_count() == 1


def test_dimension_is_checked_against_the_stored_set_at_log_time():
    chroma.TrainingSession(SET).log(input_uri="/a", embedding=np.ones(4)) or None
    s = chroma.TrainingSession(SET)
    s.log(input_uri="/a", embedding=np.ones(4))
    s.save()
    other = chroma.TrainingSession(SET)
    with pytest.raises(DimensionMismatchError):
        other.log(input_uri="/b", embedding=np.ones(8, np.float32))


@pytest.mark.parametrize("bad", [{}, {"model": {"a": 1}}, {"model": [1]}])
def test_bad_embedding_set(bad):
    with pytest.raises(InvalidEmbeddingSetError):
        chroma.TrainingSession(embedding_set=bad)


def test_session_without_set_needs_one_per_call():
    s = chroma.TrainingSession()
    with pytest.raises(InvalidEmbeddingSetError, match="no embedding_set"):
        s.log(input_uri="/a", embedding=[1.0])
    s.log(input_uri="/a", embedding=[1.0], embedding_set={"model": "a"})
    s.log(input_uri="/b", embedding=[1.0, 2.0], embedding_set={"model": "b"})
    assert sorted(b.count for b in s.save()) == [1, 1]


@pytest.mark.parametrize(
    ("value", "part"),
    [
        ("../../etc", "_._.._etc"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("..", "_."),
        ("x..y", "x..y"),
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers_all-MiniLM-L6-v2"),
    ],
)
def test_bufferlocal_slugs_set_values_and_never_writes_outside_its_directory(tmp_path, value, part):
    s = chroma.TrainingSession(embedding_set={**SET, "layer": value})
    s.bufferlocal(file=str(tmp_path / "out" / "chroma-$model-$layer.jsonl"))
    s.log(input_uri="/a", embedding=[1.0])
    (saved,) = s.save()
    assert saved.path == tmp_path / "out" / f"chroma-user-exp-abc-{part}.jsonl" and saved.path.exists()
    # set given per call, and the value as a whole directory part: still inside out/
    s = chroma.TrainingSession()
    s.bufferlocal(file=str(tmp_path / "out" / "$layer" / "b-$batch_id.jsonl"))
    s.log(input_uri="/a", embedding=[1.0], embedding_set={**SET, "layer": value})
    (saved,) = s.save()
    assert saved.path.parent == tmp_path / "out" / part
    assert not (tmp_path / "etc").exists() and all(
        p.is_relative_to(tmp_path / "out") for p in tmp_path.rglob("*.jsonl")
    )


def test_long_set_values_are_cut_and_a_name_too_long_is_refused_clearly(tmp_path):
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    paths = []
    for value in (long_a, long_b):
        s = chroma.TrainingSession(embedding_set={"model": value})
        s.bufferlocal(file=str(tmp_path / "chroma-$model.jsonl"))
        s.log(input_uri="/a", embedding=[1.0])
        paths.append(s.save()[0].path)
    assert paths[0] != paths[1] and all(len(p.name) <= 80 for p in paths)
    template = str(tmp_path / ("$model-" * 5 + "x.jsonl"))
    with pytest.raises(InvalidPathError, match="255"):
        chroma.TrainingSession(embedding_set={"model": long_a}).bufferlocal(file=template)


@pytest.mark.parametrize(
    ("template", "match"),
    [("/tmp/chroma-$colour.jsonl", r"\$colour"), ("/tmp/chroma.txt", r"\.jsonl"), ("/tmp/$.jsonl", "stray")],
)
def test_bufferlocal_template_errors(template, match):
    with pytest.raises(InvalidPathError, match=match):
        chroma.TrainingSession(embedding_set=SET).bufferlocal(file=template)


def test_bufferlocal_gz_and_file_accepted_by_upload(tmp_path):
    s = chroma.TrainingSession(embedding_set=SET)
    s.bufferlocal(file=str(tmp_path / "chroma-${model}_$set_id.jsonl.gz"))
    x, labels, _ = clusters(n_per=10, dim=8)
    s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x, label=labels)
    (saved,) = s.save(upload=False)
    assert saved.upload is None and training_count() == 0
    assert saved.path is not None and saved.path.name == f"chroma-user-exp-abc_{chroma.embedding_set_id(SET)}.jsonl.gz"
    report = chroma.TrainingSession(SET).transport.upload_file(saved.path)
    assert (report.read, report.stored, report.ok) == (50, 50, True)
    assert chroma.TrainingSession(SET).transport.upload_file(saved.path).stored == 0  # idempotent


def test_failed_save_keeps_the_batch_and_its_id(tmp_path, monkeypatch):
    s = chroma.TrainingSession(embedding_set=SET)
    s.bufferlocal(file=str(tmp_path / "b-$batch_id.jsonl"))
    s.log(input_uri="/a", embedding=[1.0, 2.0])
    calls = []

    def broken(header, records):
        calls.append(header.batch_id)
        raise chroma.TransportError("service down")

    with monkeypatch.context() as patch:
        patch.setattr(s.transport, "upload", broken)
        with pytest.raises(chroma.TransportError):
            s.save()
        s.log(input_uri="/b", embedding=[3.0, 4.0])  # logged after the failure: goes into a new batch
    saved = s.save()
    assert [b.count for b in saved] == [1, 1]
    assert saved[0].batch_id == calls[0]  # the retried batch kept its id, so a retry cannot duplicate
    assert len(list(tmp_path.glob("b-*.jsonl"))) == 2
    assert training_count() == 2
    assert list(s.kept_in.glob("*.jsonl")) == []  # the copy kept on disk went once the batch was saved


def test_a_failed_save_says_where_the_records_wait_and_they_can_be_uploaded_from_there(monkeypatch):
    s = chroma.TrainingSession(embedding_set=SET)
    s.log(input_uri=["/a", "/b"], embedding=np.ones((2, 3), np.float32))
    with monkeypatch.context() as patch:
        patch.setattr(s.transport, "upload", lambda h, r: (_ for _ in ()).throw(chroma.TransportError("down.")))
        with pytest.raises(chroma.TransportError) as info:
            s.save()
    message = str(info.value)
    assert message.startswith("down.") and "2 record(s) in 1 batch(es) were not saved" in message
    assert str(s.kept_in) in message and "upload-training" in message
    (kept,) = s.kept_in.glob("*.jsonl")
    from chroma_core.cli import main

    assert main(["upload-training", str(kept)]) == 0  # what a user does if the process ended
    assert training_count() == 2


def test_a_batch_that_cannot_be_written_does_not_hold_up_the_next(tmp_path):
    (tmp_path / "a").write_text("a file where the batch's folder should be")
    s = chroma.TrainingSession()
    s.bufferlocal(file=str(tmp_path / "$model" / "b-$batch_id.jsonl"))
    s.log(input_uri="/a", embedding=[1.0], embedding_set={"model": "a"})
    s.log(input_uri="/b", embedding=[1.0], embedding_set={"model": "b"})
    with pytest.raises(chroma.StorageError, match="cannot write the batch file"):
        s.save()
    assert training_count({"model": "b"}) == 1 and s.pending == 1  # b was saved; a waits
    (tmp_path / "a").unlink()
    (saved,) = s.save()
    assert saved.set_id == chroma.embedding_set_id({"model": "a"}) and training_count({"model": "a"}) == 1


def test_unsaved_session_warns(caplog):
    s = chroma.TrainingSession(embedding_set=SET)
    s.log(input_uri="/a", embedding=[1.0])
    with caplog.at_level(logging.WARNING, logger="chroma"):
        del s
        import gc

        gc.collect()
    assert "1 unsaved records" in caplog.text


def test_saved_in_one_process_queried_in_the_next(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, chroma
        rng = np.random.default_rng(0)
        x = rng.normal(size=(300, 16)).astype(np.float32)
        with chroma.TrainingSession(embedding_set={SET!r}) as s:
            s.log(input_uri=[f"/t/{{i}}" for i in range(300)], embedding=x)
        np.save("x.npy", x)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    x = np.load(tmp_path / "x.npy")
    result = chroma.QuerySession(embedding_set=SET).log(input_uri="/q", embedding=x[5])
    assert result.not_useful and result.nearest[0].input_uri == "/t/5"


def test_query_session_batch_and_unknown_set():
    x, labels, _ = clusters(n_per=50, dim=16)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x, label=labels)
    q = chroma.QuerySession(SET)
    results = q.log(input_uri=["/a", "/b"], embedding=x[:2])
    assert [r.input_uri for r in results] == ["/a", "/b"]
    with pytest.raises(chroma.UnknownEmbeddingSetError, match="chroma sets"):
        chroma.QuerySession({"model": "never-trained"}).log(input_uri="/a", embedding=x[0])
    with pytest.raises(DimensionMismatchError):
        q.log(input_uri="/a", embedding=np.ones(3))


def test_thresholds_override():
    x, labels, _ = clusters(n_per=50, dim=16)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x)
    strict = chroma.QuerySession(SET, thresholds={"novelty": 0.0, "near_duplicate": 0.0})
    r = strict.log(input_uri="/q", embedding=x[0] + 0.01)
    assert r.recommendations == ("out_of_distribution",) and r.thresholds["novelty"] == 0.0
    with pytest.raises(chroma.ConfigError, match="unknown threshold"):
        chroma.QuerySession(SET, thresholds={"novelty_pct": 1})


def test_query_result_to_dict_is_json():
    x, _, _ = clusters(n_per=10, dim=8)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/{i}" for i in range(len(x))], embedding=x)
    d = chroma.QuerySession(SET).log(input_uri="/q", embedding=x[1]).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert chroma.QueryResult.from_dict(d).to_dict() == d


def test_previews_are_kept_with_the_records_they_name(tmp_path):
    s = chroma.TrainingSession(embedding_set=SET)
    s.bufferlocal(file=str(tmp_path / "b-$timestamp.jsonl"))
    s.log(input_uri="/a", embedding=np.ones(4, np.float32), preview="the  first\ninput")  # the fast path
    s.log(input_uri="/b", embedding=[1.0, 2.0, 3.0, 4.0])  # the general path, no preview
    s.log(input_uri=["/c", "/d"], embedding=np.ones((2, 4)), preview=["x" * 600, None])
    with pytest.raises(InvalidEmbeddingError, match="preview must be a list"):
        s.log(input_uri=["/e", "/f"], embedding=np.ones((2, 4)), preview="one for two")
    (saved,) = s.save()
    _, records, problems = read_batch(saved.path)
    assert not problems
    assert records.previews[:2] == ["the first input", None]
    assert len(records.previews[2]) == 500 and records.previews[3] is None


def test_a_query_session_dropped_without_close_still_stores_its_records_at_exit(tmp_path):
    # The shared worker's only strong reference is the registry; shutdown at exit must not let it go first.
    code = textwrap.dedent(
        """
        import numpy as np, chroma
        x = np.random.default_rng(0).normal(size=(90, 8)).astype(np.float32)
        with chroma.TrainingSession({"model": "m"}) as s:
            s.log(input_uri=[f"/t/{i}" for i in range(90)], embedding=x)
        chroma.QuerySession({"model": "m"}).log(input_uri="/prod", embedding=x[0] + 0.5)
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    info = chroma.TrainingSession({"model": "m"}).transport.get_set(chroma.embedding_set_id({"model": "m"}))
    assert info is not None and info.production == 1


def test_a_session_discarded_after_a_failed_save_says_where_its_records_are(caplog, monkeypatch):
    s = chroma.TrainingSession(embedding_set=SET)
    s.log(input_uri="/a", embedding=[1.0])
    monkeypatch.setattr(s.transport, "upload", lambda h, r: (_ for _ in ()).throw(chroma.TransportError("down.")))
    with pytest.raises(chroma.TransportError):
        s.save()
    kept_in = s.kept_in
    with caplog.at_level(logging.WARNING, logger="chroma"):
        del s
        import gc

        gc.collect()
    assert "1 unsaved records that its save() could not store" in caplog.text and str(kept_in) in caplog.text
