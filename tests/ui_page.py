"""Driving the page in Debian's chromium: shared by the page tests and benchmarks/bench_ui.py.

Playwright's own browser download cannot work on these machines, so both launch the system chromium with
software WebGL; the lasso is the same gesture in both, so the benchmark times what the test checks.
"""

from __future__ import annotations

import time
from typing import Any

#: What WebGL needs in a headless chromium without a GPU (../shared/notes/plot-libraries.md).
CHROMIUM_ARGS = [
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--enable-webgl",
    "--no-sandbox",
]


def lasso_middle(page: Any, box: dict[str, float]) -> float:
    """Shift-drag a lasso around the middle quarter of ``box`` (the canvas) and release it.

    Returns the ``time.perf_counter()`` of the release: everything before it is 48 mouse moves, each answered by a
    redraw of every point (the renderer's time, not the page's), so a caller timing the page starts there.
    """
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    w, h = box["width"] / 4, box["height"] / 4
    page.evaluate("document.activeElement && document.activeElement.blur()")  # keys reach the page, not a button
    page.keyboard.down("Shift")
    page.mouse.move(cx - w, cy - h)
    page.mouse.down()
    for px, py in [(cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h), (cx - w, cy - h)]:
        page.mouse.move(px, py, steps=12)
    released = time.perf_counter()
    page.mouse.up()
    page.keyboard.up("Shift")
    return released
