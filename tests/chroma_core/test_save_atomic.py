"""save() is atomic: a process killed with SIGKILL mid-save leaves no batch or the whole batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chroma_core.atomic import TEMP_PREFIX
from chroma_core.batch_format import read_batch

N, DIM = 20_000, 256

SCRIPT = textwrap.dedent(
    f"""
    import sys, numpy as np, chroma
    x = np.random.default_rng(0).normal(size=({N}, {DIM})).astype(np.float32)
    s = chroma.TrainingSession(embedding_set={{"model": "m", "layer": "l"}})
    s.bufferlocal(file=sys.argv[1])
    s.log(input_uri=[f"/{{i}}" for i in range({N})], embedding=x)
    print("saving", flush=True)
    s.save(upload=False)
    print("saved", flush=True)
    """
)


def _run_and_kill(out: Path, delay: float) -> str:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out / "batch.jsonl")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "saving"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    return rest


@pytest.mark.slow
def test_sigkill_during_save_leaves_nothing_or_everything(tmp_path):
    outcomes = set()
    # Kill at increasing delays so that some kills land while the temp file is being written.
    for i, delay in enumerate([0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 3.0]):
        out = tmp_path / f"run{i}"
        out.mkdir()
        _run_and_kill(out, delay)
        target = out / "batch.jsonl"
        temps = [p for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]
        if target.exists():
            _, records, problems = read_batch(target)
            assert problems == [] and len(records) == N
            outcomes.add("whole")
        else:
            outcomes.add("partial-temp" if temps else "none")
    # The kills must have caught both sides of the rename, or the test proved nothing.
    assert "whole" in outcomes and outcomes & {"partial-temp", "none"}, outcomes
