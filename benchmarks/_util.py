"""Timing helpers: medians of repeated runs, each figure beside a baseline measured in the same run."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


def per_call(fn: Callable[[], object], *, inner: int = 1000, repeats: int = 50) -> float:
    """Median seconds per call over ``repeats`` timed loops of ``inner`` calls (loop overhead included)."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` runs of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def index_covers(log: Path, rows: int) -> bool:
    """True once a ``chroma serve`` log says a set's index covers all ``rows`` training rows: built whole ("is
    ready: N rows") or extended to them ("covers all N training rows")."""
    text = log.read_text(errors="replace")
    return f"is ready: {rows} rows" in text or f"covers all {rows} training rows" in text


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Poll ``url`` (on 127.0.0.1) until it answers 2xx; fail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {timeout:.0f}s")


def start_chroma_server(
    data: Path, *args: str, log: Path | None = None, log_level: str = "warning"
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m chroma serve`` on 127.0.0.1 with a free port over ``data``; returns it once it answers.

    ``args`` are more ``serve`` options (``--keys-file ...``); its output goes to ``log`` (default: nowhere).
    """
    port = free_port()
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    command = [sys.executable, "-m", "chroma", "serve", "--port", str(port), "--persist-directory", str(data)]
    try:
        proc = subprocess.Popen([*command, "--log-level", log_level, *args], stdout=out, stderr=out)
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url + "/v1/health", proc, 60, "chroma serve")
    return proc, url


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (the service's graceful shutdown), then SIGKILL if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serving(
    data: Path, *args: str, log: Path | None = None, log_level: str = "warning"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`start_chroma_server` as a ``with`` block: (process, url) inside it, the service stopped after it."""
    proc, url = start_chroma_server(data, *args, log=log, log_level=log_level)
    try:
        yield proc, url
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc): a cost the machine's load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle(*pids: int, timeout: float = 600.0) -> float:
    """Wait until none of these processes used more than 30 ms of CPU in half a second (their background work
    done), at most ``timeout`` seconds; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = [cpu_seconds(p) for p in pids]
        time.sleep(0.5)
        if all(cpu_seconds(p) - b < 0.03 for p, b in zip(pids, before, strict=True)):
            break
    return time.monotonic() - started
