"""The service's memory under hostile bodies, beside its idle memory, in one run (issue 18).

    python benchmarks/bench_hostile.py

A keyed ``chroma serve`` with its default limits, on 127.0.0.1. Probes, each followed by a ``/v1/health`` round
trip whose time is printed:

- an unauthenticated 50 MB JSON body (no key: refused before the body is read);
- a gzip bomb on ``/v1/batches`` (a header line, then about 2 GiB of newlines in about 2 MB of gzip);
- a gzip bomb of a JSON query (1 GiB of spaces: the JSON limit counts decompressed bytes);
- one long line of gzip (a record line far longer than the header's dimension allows).

The figure is the server's peak resident memory (``VmHWM``) after each probe, beside its idle peak; the target is
under +100 MB for every probe.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
import zlib
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from _util import start_chroma_server, verdict

KEY = "bench-hostile-key-0001"
SET = {"model": "bench", "layer": "hostile"}
MB = 1_000_000


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gzip_of(head: bytes, chunk: bytes, repeats: int) -> bytes:
    """gzip of ``head`` + ``chunk * repeats``, made without holding the expanded bytes."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [z.compress(head)]
    for _ in range(repeats):
        parts.append(z.compress(chunk))
    parts.append(z.flush())
    return b"".join(parts)


def header_line(dimension: int = 8) -> bytes:
    header = {
        "chroma_batch": 1,
        "batch_id": "bench-bomb",
        "embedding_set": SET,
        "mode": "training",
        "dimension": dimension,
        "created_at": 0,
    }
    return json.dumps(header).encode() + b"\n"


def unauthenticated(url: str, size: int) -> str:
    """Send headers announcing ``size`` bytes, then as much of the body as the server takes; return its answer."""
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"POST /v1/sets/x/query HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        )
        sock.sendall(head.encode())
        block = b" " * MB
        sent = 0
        try:
            while sent < size:
                sock.sendall(block[: min(MB, size - sent)])
                sent += MB
        except OSError:
            pass  # the server answered and closed: what a server that refuses unread bodies does
        sock.settimeout(10)
        try:
            return sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace") + f" (after {sent / MB:.0f} MB sent)"
        except OSError as exc:
            return f"closed ({type(exc).__name__}) after {sent / MB:.0f} MB sent"


def health_ms(url: str) -> float:
    t0 = time.perf_counter()
    requests.get(url + "/v1/health", timeout=10).raise_for_status()
    return (time.perf_counter() - t0) * 1e3


def gzip_post(url: str, path: str, body: bytes, content_type: str) -> str:
    """POST a gzipped body with the key; the status and the start of the answer."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type, "Content-Encoding": "gzip"}
    r = requests.post(url + path, data=body, timeout=300, headers=headers)
    return f"{r.status_code} {r.text[:60]}"


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        keys = Path(d) / "keys.json"
        keys.write_text(json.dumps({KEY: "bench"}))
        server, url = start_chroma_server(Path(d) / "data", "--keys-file", str(keys), log=Path(d) / "server.log")
        try:
            idle = vm(server.pid, "VmHWM")
            print(f"chroma serve, default limits; idle peak RSS {idle:.0f} MB (the baseline)")
            print(f"  {'probe':44} {'answer':44} {'peak MB':>8} {'+MB':>6} {'health ms':>9}  target +100 MB")

            def report(name: str, answer: str) -> None:
                peak = vm(server.pid, "VmHWM")
                ms = health_ms(url)
                print(
                    f"  {name:44} {answer[:44]:44} {peak:8.0f} {peak - idle:6.0f} {ms:9.1f}  "
                    f"{verdict(peak - idle < 100)}",
                    flush=True,
                )

            report("unauthenticated 50 MB JSON body", unauthenticated(url, 50 * MB))
            bomb = gzip_of(header_line(), b"\n" * MB, 2048)
            answer = gzip_post(url, "/v1/batches", bomb, "application/x-ndjson")
            report(f"gzip bomb on /v1/batches ({len(bomb) / MB:.1f} MB -> 2.1 GB)", answer)
            json_bomb = gzip_of(b'{"embeddings": [[1, 2]]', b" " * MB, 1024)
            answer = gzip_post(url, "/v1/sets/x/query", json_bomb, "application/json")
            report(f"gzip bomb JSON query ({len(json_bomb) / MB:.1f} MB -> 1.1 GB)", answer)
            line = gzip_of(header_line(), b"1" * MB, 512)
            report(
                f"one 512 MB line ({len(line) / MB:.1f} MB of gzip)",
                gzip_post(url, "/v1/batches", line, "application/x-ndjson"),
            )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
