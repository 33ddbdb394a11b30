"""The page with a million points: projection on the server, first draw, pan, hover and lasso in chromium.

Each size is measured in the same run beside a baseline: a bare ``/v1/health`` round trip for the server side, and
the same page at ``--baseline`` points (default 100k) for the browser side. Needs Debian's chromium and Playwright's
Python package (``pip install playwright``; its own browser download is not used). Run:

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ui.py --points 1000000
    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ui.py --points 1000000 --projections pca,umap

The vectors are 64-d: the page's cost is per point, not per dimension (the projection reads every vector once).
Most points are production inputs (stored without answers), so no training index is being built while we time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import free_port, wait_until_serving

from chroma_core.embedding_set import EmbeddingSet
from chroma_core.records import new_batch
from chroma_core.transport.local import LocalTransport
from tests.ui_page import CHROMIUM_ARGS, lasso_middle


def build(root: Path, points: int, dim: int, training: int) -> str:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(12, dim)).astype(np.float32)
    es = EmbeddingSet.from_dict({"model": f"bench-ui-{points}", "model_version": "1", "layer": "x"})
    transport = LocalTransport(root)
    for mode, count in (("training", training), ("production", points - training)):
        for start in range(0, count, 50_000):
            n = min(50_000, count - start)
            v = centers[rng.integers(12, size=n)] + 0.4 * rng.normal(size=(n, dim)).astype(np.float32)
            uris = [f"{mode}/{start + i}" for i in range(n)]
            transport.upload(*new_batch(es, mode, v.astype(np.float32), uris))
    transport.close()
    return es.id


def fetch(url: str) -> tuple[float, int]:
    """Seconds until ``url`` answers 200 (a large map answers 202 with its progress until it is ready), and size."""
    t0 = time.perf_counter()
    while True:
        with urllib.request.urlopen(url, timeout=600) as r:
            body = r.read()
            if r.status != 202:
                return time.perf_counter() - t0, len(body)
        time.sleep(0.2)


def browse(url: str, set_id: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        t0 = time.perf_counter()
        page.goto(f"{url}/ui?set={set_id}")
        page.wait_for_function("window.chromaUI && chromaUI.ready", timeout=600_000)
        ready = time.perf_counter() - t0
        out: dict[str, float] = {"ready_s": ready, "points": page.evaluate("chromaUI.points")}
        box = page.locator("#canvas").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # Pan: frames the page paints while the mouse drags for ~2 s.
        page.evaluate(
            "window.__frames = []; (function f(t){ __frames.push(t); if (__frames.length < 100000) "
            "requestAnimationFrame(f); })(performance.now())"
        )
        page.mouse.move(cx, cy)
        page.mouse.down()
        t1 = time.perf_counter()
        for i in range(40):
            page.mouse.move(cx + 200 * np.sin(i / 6), cy + 120 * np.cos(i / 6))
            page.wait_for_timeout(40)
        page.mouse.up()
        drag = time.perf_counter() - t1
        stamps = page.evaluate("__frames.slice()")
        gaps = np.diff(np.array(stamps[-int(drag * 1000 / 17) - 2 :]))
        out["pan_frame_ms_median"] = float(np.median(gaps)) if len(gaps) else float("nan")
        out["pan_frame_ms_p90"] = float(np.percentile(gaps, 90)) if len(gaps) else float("nan")
        # Hover: from the mouse over a point to its details shown.
        hovers = []
        for i in (0, out["points"] // 2, out["points"] - 1):
            x, y = page.evaluate(f"chromaUI.plot.getScreenPosition({int(i)})")
            if not (0 <= x < box["width"] and 0 <= y < box["height"]):
                continue
            page.evaluate("chromaUI.hoverShown = null")
            t2 = time.perf_counter()
            page.mouse.move(box["x"] + x, box["y"] + y)
            page.wait_for_function("chromaUI.hoverShown != null", timeout=60_000)
            hovers.append(time.perf_counter() - t2)
            page.mouse.move(box["x"] + 2, box["y"] + 2)
            page.wait_for_timeout(100)
        out["hover_s_median"] = statistics.median(hovers) if hovers else float("nan")
        # Lasso around the middle quarter of the canvas.
        page.evaluate("chromaUI.selected = []")
        t3 = time.perf_counter()
        t4 = lasso_middle(page, box)
        page.wait_for_function("chromaUI.selected.length > 1", timeout=600_000)
        done = time.perf_counter()
        out["lasso_s"] = done - t3
        out["lasso_release_s"] = done - t4
        out["selected"] = page.evaluate("chromaUI.selected.length")
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        out["js_heap_mb"] = heap / 2**20
        browser.close()
    return out


def measure(points: int, dim: int, training: int, root: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    set_id = build(root / f"n{points}", points, dim, training)
    built = time.perf_counter() - t0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chroma", "ui", "--persist-directory", str(root / f"n{points}"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url + "/v1/health", proc, 120, "chroma ui")
        time.sleep(20 if training >= 50_000 else 2)  # let the training index build finish before timing
        health = statistics.median(fetch(url + "/v1/health")[0] for _ in range(20))
        first, size = fetch(f"{url}/v1/sets/{set_id}/map")
        again, _ = fetch(f"{url}/v1/sets/{set_id}/map")
        out = {
            "store_s": built,
            "health_ms": health * 1000,
            "map_first_s": first,
            "map_cached_s": again,
            "map_mb": size / 2**20,
        }
        out.update(browse(url, set_id))
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def projections(points: int, dim: int, training: int, root: Path, methods: list[str]) -> dict[str, float]:
    """Server side only: each projection's fit (sample read + fit) and the pass over every row (read, transform,
    cluster), in this process, on one fresh store."""
    from chroma_core.ui.projection import project

    set_id = build(root / f"p{points}", points, dim, training)
    transport = LocalTransport(root / f"p{points}")
    out: dict[str, float] = {}
    try:
        for method in methods:
            marks: list[float] = []
            t0 = time.perf_counter()
            project(
                transport.engine.store,
                set_id,
                method=method,
                progress=lambda done, n, marks=marks: marks.append(time.perf_counter()),
            )
            end = time.perf_counter()
            out[f"{method}_fit_s"] = marks[0] - t0
            out[f"{method}_transform_s"] = end - marks[0]
            out[f"{method}_rows_per_s"] = points / (end - marks[0])
    finally:
        transport.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--training", type=int, default=50_000, help="training rows of each set (the rest production)")
    parser.add_argument(
        "--projections",
        metavar="METHODS",
        help="only time the server's projections, e.g. pca,umap (fit and pass over every row), no browser",
    )
    args = parser.parse_args()
    if args.projections is None and shutil.which("chromium") is None:
        sys.exit("bench_ui needs Debian's chromium: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        if args.projections:
            methods = args.projections.split(",")
            rows = {
                n: projections(n, args.dim, min(args.training, n // 2), Path(tmp), methods)
                for n in (args.baseline, args.points)
            }
        else:
            rows = {
                n: measure(n, args.dim, min(args.training, n // 2), Path(tmp)) for n in (args.baseline, args.points)
            }
    keys = list(next(iter(rows.values())))
    print(f"\n| figure | {args.baseline:,} points (baseline) | {args.points:,} points |")
    print("|---|---|---|")
    for k in keys:
        print(f"| {k} | {rows[args.baseline][k]:,.2f} | {rows[args.points][k]:,.2f} |")


if __name__ == "__main__":
    main()
