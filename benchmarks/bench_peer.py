"""This project beside the peer a user would otherwise pick: chromadb, on the same data, in one run.

    python benchmarks/bench_peer.py [--n 100000] [--dim 384] [--queries 500] [--peer-python PATH]

The peer runs in its own virtual environment (``python -m venv /work/venv-peer && /work/venv-peer/bin/pip
install chromadb``; chromadb installs a ``chroma`` console script that must not shadow this project's), named by
``--peer-python`` or ``CHROMA_PEER_PYTHON``; without one only this project's figures are printed. Its telemetry is
turned off (``ANONYMIZED_TELEMETRY=False``): nothing leaves 127.0.0.1.

Data: ``n`` unit vectors around 1,000 centres (a clustered space, like real embeddings), ``queries`` held-out
points from the same centres; the exact top-10 by cosine, from numpy, is the ground truth for recall@10. Each
system runs in a fresh process so that its peak memory is its own: this project's embedded engine
(``TrainingSession.save()`` then ``QuerySession.log``, which also scores the answer) and its service
(``chroma serve``), chromadb's ``PersistentClient`` and its HTTP server (``chroma run``). Reported per system:
ingest rate (until the call returns), time until its index serves every row, the slowest of the 5 queries asked
right then and the seconds until the processes are idle after them, query p50/p99 once they are (one query per
call, top-10), recall@10, peak RSS of the client process and of the server, and disk use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import (  # stdlib only: the peer's venv loads it too
    free_port,
    idle,
    index_covers,
    start_chroma_server,
    wait_until_serving,
)

HERE = Path(__file__).resolve()
K = 10
#: Queries timed right after the index is ready, before the steady-state ones.
FIRST = 5


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a process, this one by default.

    Not ``getrusage``: Linux carries ``ru_maxrss`` across ``exec``, so a worker would report its parent's peak.
    """
    for line in Path(f"/proc/{pid or os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def make_data(n: int, dim: int, queries: int, folder: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    pick = rng.integers(0, 1000, size=n + queries)
    x = centres[pick] + 0.6 * rng.normal(size=(n + queries, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    data, q = x[:n], x[n:]
    truth = np.empty((queries, K), dtype=np.int64)
    for s in range(0, queries, 256):
        sims = q[s : s + 256] @ data.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        truth[s : s + 256] = np.take_along_axis(top, order, axis=1)
    np.save(folder / "data.npy", data)
    np.save(folder / "queries.npy", q)
    np.save(folder / "truth.npy", truth)


def latencies(ask, queries: np.ndarray, truth: np.ndarray, server: subprocess.Popen[bytes] | None) -> dict[str, float]:
    """p50/p99 ms of one call per query and recall@10 of the ids it returns (ints), once this process and the
    ``server`` are idle; before that, the slowest of the first :data:`FIRST` queries, asked while they may still be
    busy (this project calibrates and loads its set in the background once the index is ready)."""
    first = []
    for q in queries[:FIRST]:
        t0 = time.perf_counter()
        ask(q)
        first.append(time.perf_counter() - t0)
    settle = idle(os.getpid(), *([server.pid] if server is not None else []))
    times, hits = [], 0
    for q, t in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        ids = ask(q)
        times.append(time.perf_counter() - t0)
        hits += len(set(ids[:K]) & set(t.tolist()))
    return {
        "first_ms": float(max(first) * 1e3),
        "settle_s": settle,
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "recall": hits / (K * len(queries)),
    }


def _with_totals(
    figures: dict[str, float], ingest_per_s: float, ready_s: float, path: Path, server: subprocess.Popen[bytes] | None
) -> dict[str, float]:
    """The figures every system reports besides its latencies: ingest, readiness, memory, disk."""
    figures.update(ingest_per_s=ingest_per_s, index_ready_s=ready_s, client_rss_mb=peak_rss_mb(), disk_mb=disk_mb(path))
    if server is not None:
        figures["server_rss_mb"] = peak_rss_mb(server.pid)
    return figures


# ---- this project ------------------------------------------------------------------------------------------------


def _ours(folder: Path, service: bool) -> dict[str, float]:
    import chroma
    from chroma_core.types import Thresholds

    data, queries, truth = (np.load(folder / f) for f in ("data.npy", "queries.npy", "truth.npy"))
    store = folder / "ours"
    es = {"model": "peer-bench", "layer": "l"}
    options: dict[str, object] = {"persist_directory": str(store)}
    server = None
    log = folder / "server.log"
    if service:
        server, url = start_chroma_server(store, log=log, log_level="info")
        options = {"chroma_url": url}
    try:
        t0 = time.perf_counter()
        session = chroma.TrainingSession(embedding_set=es, **options)  # type: ignore[arg-type]
        step = 10_000
        for s in range(0, len(data), step):
            session.log(input_uri=[str(i) for i in range(s, min(s + step, len(data)))], embedding=data[s : s + step])
            session.save()
        ingest = time.perf_counter() - t0
        ready = _wait_ready(folder, service, es, log, t0)
        qs = chroma.QuerySession(embedding_set=es, store=False, thresholds=Thresholds(neighbors=K), **options)  # type: ignore[arg-type]
        figures = latencies(
            lambda q: [int(n.input_uri) for n in qs.log(input_uri="q", embedding=q).nearest],
            queries,
            truth,
            server,
        )
        return _with_totals(figures, len(data) / ingest, ready, store, server)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)


def _wait_ready(folder: Path, service: bool, es: dict[str, str], log: Path, t0: float) -> float:
    """Seconds from the start of the ingest until the set's index covers every row (exact search until then)."""
    import inspect

    from chroma_core.engine.sqlite_store import SQLiteStore

    total = len(np.load(folder / "data.npy", mmap_mode="r"))
    if total < inspect.signature(SQLiteStore).parameters["ann_threshold"].default:
        return time.perf_counter() - t0  # a set this small is searched exactly: nothing to wait for
    deadline = time.monotonic() + 900
    if service:
        while time.monotonic() < deadline:
            if index_covers(log, total):
                return time.perf_counter() - t0
            time.sleep(0.5)
        return float("nan")
    import chroma
    from chroma_core.engine import open_engine

    engine = open_engine(folder / "ours")
    set_id = chroma.embedding_set_id(es)
    dim = engine.get_set(set_id).dimension  # type: ignore[union-attr]
    while time.monotonic() < deadline:
        found = engine.store.nearest(set_id, np.zeros((1, dim), np.float32) + 1, 1)
        if found is not None and found.covered >= total:
            return time.perf_counter() - t0
        time.sleep(0.5)
    return float("nan")


# ---- the peer: chromadb ------------------------------------------------------------------------------------------


def _peer(folder: Path, http: bool) -> dict[str, float]:
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    import chromadb
    from chromadb.config import Settings

    data, queries, truth = (np.load(folder / f) for f in ("data.npy", "queries.npy", "truth.npy"))
    path = folder / "peer"
    settings = Settings(anonymized_telemetry=False)
    server = None
    if http:
        port = free_port()
        script = Path(sys.executable).parent / "chroma"
        server = subprocess.Popen(
            [str(script), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        wait_until_serving(f"http://127.0.0.1:{port}/api/v2/heartbeat", server, 60, "chroma run (chromadb)")
        client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings)
    else:
        client = chromadb.PersistentClient(path=str(path), settings=settings)
    try:
        col = client.create_collection("bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
        step = min(5000, client.get_max_batch_size())
        t0 = time.perf_counter()
        for s in range(0, len(data), step):
            part = data[s : s + step]
            col.add(ids=[str(i) for i in range(s, s + len(part))], embeddings=part)
        ingest = time.perf_counter() - t0
        figures = latencies(
            lambda q: [int(i) for i in col.query(query_embeddings=[q], n_results=K, include=[])["ids"][0]],
            queries,
            truth,
            server,
        )
        # chromadb indexes as it ingests: its index serves every row once add() has returned.
        return _with_totals(figures, len(data) / ingest, ingest, path, server)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)


WORKERS = {
    "chroma-ml embedded": lambda f: _ours(f, service=False),
    "chroma-ml service": lambda f: _ours(f, service=True),
    "chromadb persistent": lambda f: _peer(f, http=False),
    "chromadb http": lambda f: _peer(f, http=True),
}


def _row(name: str, r: dict[str, float]) -> str:
    server = f"{r['server_rss_mb']:7.0f}" if "server_rss_mb" in r else "      -"
    return (
        f"  {name:21} {r['ingest_per_s']:9.0f} {r['index_ready_s']:8.1f} {r['first_ms']:8.1f} {r['settle_s']:8.1f}"
        f" {r['p50_ms']:7.2f} {r['p99_ms']:7.2f}"
        f" {r['recall']:7.3f} {r['client_rss_mb']:7.0f} {server} {r['disk_mb']:7.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--peer-python", default=os.environ.get("CHROMA_PEER_PYTHON"))
    parser.add_argument("--only", action="append", choices=list(WORKERS), help="run only this system (repeatable)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](Path(args.folder))))
        return

    folder = Path(tempfile.mkdtemp(prefix="chroma-peer-"))
    try:
        make_data(args.n, args.dim, args.queries, folder)
        print(f"{args.n:,} x {args.dim} clustered unit vectors, {args.queries} queries, top-{K}, {os.cpu_count()} cpus")
        print(
            f"  {'system':21} {'ingest/s':>9} {'ready s':>8} {'first ms':>8} {'settle s':>8}"
            f" {'p50 ms':>7} {'p99 ms':>7} {'rec@10':>7}"
            f" {'RSS MB':>7} {'srv MB':>7} {'disk MB':>7}"
        )
        for name in args.only or WORKERS:
            python = args.peer_python if name.startswith("chromadb") else sys.executable
            if not python:
                print(f"  {name:21} skipped: no --peer-python (a venv with chromadb)")
                continue
            env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "OPENBLAS_NUM_THREADS": "1"}
            done = subprocess.run(
                [python, str(HERE), "--worker", name, "--folder", str(folder)],
                capture_output=True,
                text=True,
                env=env,
                timeout=3600,
            )
            if done.returncode:
                print(f"  {name:21} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            print(_row(name, json.loads(done.stdout.strip().splitlines()[-1])), flush=True)
            for sub in ("ours", "peer"):
                shutil.rmtree(folder / sub, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
