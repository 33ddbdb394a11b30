"""Long work shows a bar on a terminal only, can be told not to, and says at INFO what took long."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import chroma
from chroma_core import progress
from chroma_core.cli import main
from tests.conftest import SET, clusters


@pytest.fixture
def trained():
    x, labels, _ = clusters(n_per=50, dim=8, k=3)
    with chroma.TrainingSession(SET) as s:
        s.log(input_uri=[f"/t/{i}" for i in range(len(x))], embedding=x, label=labels)
    return x


def test_an_export_shows_a_bar_only_when_asked_or_on_a_terminal(trained, tmp_path, capsys, monkeypatch):
    chroma.export(SET, tmp_path / "a.jsonl", progress=True)
    assert "exporting a.jsonl" in capsys.readouterr().err
    chroma.export(SET, tmp_path / "b.jsonl")  # not a terminal here: no bar
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "_wanted", lambda p: p is not False)  # as if on a terminal
    assert (
        main(["export", "--set", chroma.embedding_set_id(SET)[:8], "-o", str(tmp_path / "c.jsonl"), "--no-progress"])
        == 0
    )
    assert "exporting" not in capsys.readouterr().err


def test_the_environment_switch_turns_bars_off(monkeypatch):
    monkeypatch.setenv("CHROMA_PROGRESS", "0")
    assert progress._wanted(None) is False and progress._wanted(True) is True


def test_what_took_more_than_a_second_is_logged_at_info(monkeypatch, caplog):
    clock = iter([100.0, 102.5, 200.0, 200.2])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="chroma"):
        with progress.timed("a long thing"):
            pass
        with progress.timed("a quick thing"):
            pass
    assert "a long thing took 2.5 s" in caplog.text and "a quick thing" not in caplog.text


def test_an_index_build_reports_its_progress(tmp_path):
    ann = pytest.importorskip("chroma_core.engine.ann")
    pytest.importorskip("usearch")
    vectors = np.random.default_rng(0).normal(size=(45_000, 8)).astype(np.float32)
    seen: list[tuple[int, int]] = []
    index = ann.ANNIndex.open(
        tmp_path / "i.usearch",
        8,
        "f16",
        len(vectors),
        lambda first: vectors[first:],
        progress=lambda d, t: seen.append((d, t)),
    )
    assert len(index) == 45_000 and seen == [(20_000, 45_000), (40_000, 45_000), (45_000, 45_000)]
