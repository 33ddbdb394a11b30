"""The page in a real browser (Debian's chromium through Playwright) over a real keyed server.

The page is static and carries no data; what it draws comes from the keyed /v1 routes, so another application's
key sees none of it. Set UI_SCREENSHOTS=DIR to keep the screenshots (docs/images holds the committed ones).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import requests

from chroma_core.config import load_config
from chroma_core.transport import transport_for
from chroma_core.types import Selection
from chroma_core.ui.projection import Projection, project
from tests.chroma_core.drift.helpers import DAY, T0, blobs, log_window, training_set
from tests.ui_page import CHROMIUM_ARGS, lasso_middle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("the page tests need Debian's chromium: apt-get install -y chromium (nox -s tests does it)")
        pytest.skip("no chromium: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def watched(shared_server, tmp_path_factory):
    alpha, beta = shared_server.tenant(), shared_server.tenant()
    transport = transport_for(load_config(chroma_url=alpha.url, api_key=alpha.key))
    _, es, known, novel = training_set(tmp_path_factory.mktemp("ui"), n=1500, transport=transport)
    rng = np.random.default_rng(3)
    for day in range(3):
        share = 40 if day == 2 else 0
        v = np.concatenate([blobs(rng, known, 100 - share), blobs(rng, novel, share)])
        log_window(
            transport, es, v, T0 + day * DAY, f"day{day}", previews=[f"input {i} of day {day}" for i in range(len(v))]
        )
    return alpha, beta, es


def _open(browser, url: str, key: str):
    page = browser.new_page(viewport={"width": 1400, "height": 800}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/ui")
    page.fill("#key", key)
    page.click("#connect")
    return page, errors


def _shot(page, name: str) -> bytes:
    png = page.screenshot()
    if os.environ.get("UI_SCREENSHOTS"):
        Path(os.environ["UI_SCREENSHOTS"], name).write_bytes(png)
    return png


def test_the_map_is_binary_behind_the_key(watched):
    alpha, beta, es = watched
    url = f"{alpha.url}/v1/sets/{es.id}/map"
    assert requests.get(url, timeout=30).status_code == 401
    response = requests.get(url, headers=alpha.headers, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-chroma-map"
    p = Projection.from_bytes(response.content)
    assert (p.training, p.production, len(p)) == (1500, 300, 1800)
    other = requests.get(url, headers=beta.headers, timeout=30)
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_embedding_set"
    point = requests.get(f"{alpha.url}/v1/sets/{es.id}/points/1500", headers=alpha.headers, timeout=30).json()
    assert point["input_uri"] == "day0/0" and point["nearest"]
    off = requests.get(f"{alpha.url}/v1/sets/{es.id}/points/1800", headers=alpha.headers, timeout=30)
    assert off.status_code == 422 and "1800 points" in off.json()["error"]["message"]


def test_the_page_itself_holds_no_data(watched):
    alpha, _, es = watched
    page = requests.get(f"{alpha.url}/ui", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert es.id not in page.text and "day0" not in page.text
    assert requests.get(f"{alpha.url}/ui/secrets.json", timeout=30).status_code == 404


def test_the_page_draws_every_point_and_hovers_selects_and_exports(browser, watched, tmp_path):
    from PIL import Image

    alpha, _, es = watched
    page, errors = _open(browser, alpha.url, alpha.key)
    page.wait_for_function("window.chromaUI && window.chromaUI.ready", timeout=60_000)
    assert page.evaluate("chromaUI.points") == 1800  # the library's own count: nothing sampled away
    page.wait_for_timeout(500)
    canvas = Image.open(io.BytesIO(page.locator("#canvas").screenshot())).convert("RGB")
    pixels = np.asarray(canvas).reshape(-1, 3)
    assert (pixels.min(axis=1) < 200).mean() > 0.01  # points drawn: not a blank white canvas
    red = (pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80)
    assert red.sum() > 20  # the recommended inputs of the shifted day are drawn in their colour

    # Hover the first production point: its input, answer and nearest training inputs show.
    box = page.locator("#canvas").bounding_box()
    x, y = page.evaluate("chromaUI.plot.getScreenPosition(1500)")
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_function("chromaUI.hoverShown != null", timeout=10_000)
    hovered = page.evaluate("chromaUI.hoverShown")
    assert "nearest training inputs" in page.inner_text("#point")
    assert page.inner_text("#point").count("train/") == 5 or hovered < 1500

    # A lasso (shift + drag) around the middle of the map selects points and lists them.
    lasso_middle(page, box)
    # A press selects the nearest point at once; the lasso's own selection follows when the drag ends.
    page.wait_for_function("chromaUI.selected.length > 50", timeout=10_000)
    selected = page.evaluate("chromaUI.selected.length")
    page.wait_for_selector("#selection ol li")
    _shot(page, "ui-map.png")

    with page.expect_download() as download:
        page.click("#export")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "index,mode,id,input_uri,preview,label,answer" and len(lines) == selected + 1
    assert page.inner_text("#drift").count("day") >= 1
    assert "drift" in page.inner_text("#drift").split("verdict", 1)[1]  # the shifted day is flagged
    assert page.locator("#label-next li").count() > 0

    # Send the lasso to "label next": the list becomes the selection's production inputs, as `chroma select`
    # answers them, and downloads as the JSON `chroma select --json` prints.
    production = page.evaluate("chromaUI.selected.filter((i) => i >= 1500).length")
    page.click("#send")
    page.wait_for_function("chromaUI.sent != null", timeout=30_000)
    assert f"from your selection: {production} production inputs" in page.inner_text("#label-next-from")
    assert page.locator("#label-next li").count() == min(50, production)
    _shot(page, "ui-selection.png")
    with page.expect_download() as download:
        page.click("#download-selection")
    selection = Selection.from_dict(json.loads(Path(download.value.path()).read_text()))
    assert selection.set_id == es.id and len(selection.picks) == selection.considered == production
    assert selection.picks[0].preview in page.inner_text("#label-next li:first-child")
    priorities = [p.priority for p in selection.picks]
    assert priorities == sorted(priorities, reverse=True)
    assert errors == []
    page.close()


def test_the_selection_route_answers_what_select_answers(watched):
    alpha, beta, es = watched
    url = f"{alpha.url}/v1/sets/{es.id}/points/select"
    body = {"indices": [0, 1, 1500, 1501, 1799, 1799]}
    assert requests.post(url, json=body, timeout=30).status_code == 401
    other = requests.post(url, json=body, headers=beta.headers, timeout=30)
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_embedding_set"
    answer = requests.post(url, json=body, headers=alpha.headers, timeout=30).json()
    selection = Selection.from_dict(answer)
    assert sorted(answer["indices"]) == [1500, 1501, 1799] and selection.considered == 3
    assert {p.input_uri for p in selection.picks} == {"day0/0", "day0/1", "day2/99"}
    off = requests.post(url, json={"indices": [1800]}, headers=alpha.headers, timeout=30)
    assert off.status_code == 422 and "1800 points" in off.json()["error"]["message"]


def _canvas_colors(page) -> np.ndarray:
    from PIL import Image

    page.wait_for_timeout(300)  # the frame after the last draw call
    pixels = np.asarray(Image.open(io.BytesIO(page.locator("#canvas").screenshot())).convert("RGB"))
    pixels = pixels.reshape(-1, 3).astype(int)
    return pixels[pixels.min(axis=1) < 235]  # drawn points, not the white background


def _near(pixels: np.ndarray, color: str, within: int = 24) -> int:
    rgb = np.array([int(color[k : k + 2], 16) for k in (1, 3, 5)])
    return int((np.abs(pixels - rgb).max(axis=1) <= within).sum())


def test_switching_the_colouring_changes_the_drawn_colours(browser, watched):
    alpha, _, _ = watched
    page, errors = _open(browser, alpha.url, alpha.key)
    page.wait_for_function(
        "window.chromaUI && window.chromaUI.ready && chromaUI.colored === 'category'", timeout=60_000
    )
    by_answer = _canvas_colors(page)
    assert _near(by_answer, "#dc2626") > 20  # recommended red

    page.select_option("#color-by", "cluster")
    page.wait_for_function("chromaUI.colored === 'cluster'", timeout=30_000)
    assert page.evaluate("chromaUI.clusters") == 20 and "20 clusters" in page.inner_text("#legend")
    by_cluster = _canvas_colors(page)
    _shot(page, "ui-clusters.png")
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
    assert sum(_near(by_cluster, c) > 20 for c in palette) >= 4  # many clusters' own colours drawn
    assert sum(_near(by_answer, c) > 20 for c in palette) <= 1

    page.select_option("#color-by", "window")
    page.wait_for_function("chromaUI.colored === 'window'", timeout=30_000)
    windows = page.evaluate("chromaUI.windows")
    assert windows >= 3 and "by 6 hours" in page.inner_text("#legend")  # three logged days, 6-hour windows
    by_window = _canvas_colors(page)
    _shot(page, "ui-windows.png")
    # The first window is drawn in blue, the last in red, and some between in neither.
    assert _near(by_window, "#2563eb") > 20 and _near(by_window, "#dc2626") > 20
    assert _near(by_window, "#8044a8", within=40) > 20  # a middle window: between blue and red
    assert _near(by_answer, "#8044a8", within=40) < 5

    page.select_option("#color-by", "category")
    page.wait_for_function("chromaUI.colored === 'category'", timeout=30_000)
    again = _canvas_colors(page)
    assert abs(_near(again, "#dc2626") - _near(by_answer, "#dc2626")) <= 0.2 * _near(by_answer, "#dc2626")
    assert errors == []
    page.close()


def test_another_applications_key_sees_no_sets(browser, watched):
    alpha, beta, es = watched
    page, errors = _open(browser, alpha.url, beta.key)
    page.wait_for_function("document.getElementById('status').textContent.includes('no sets')", timeout=30_000)
    assert es.id not in page.content()
    page.fill("#key", "not-a-key")
    page.click("#connect")
    page.wait_for_function("document.getElementById('status').textContent.includes('cannot load sets')", timeout=30_000)
    assert "invalid API key" in page.inner_text("#status")
    page.close()


@pytest.fixture
def embedded_page(tmp_path):
    """The page's app over an embedded engine (what `chroma-ml ui` serves), in this process on 127.0.0.1, so a test
    can shrink the projection's chunk size and the inline limit."""
    import threading

    import uvicorn

    from chroma_core.server.app import create_app
    from tests.conftest import free_port

    transport, es, known, novel = training_set(tmp_path, n=300)
    rng = np.random.default_rng(1)
    log_window(transport, es, np.concatenate([blobs(rng, known, 30), blobs(rng, novel, 30)]), T0, "day")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(tmp_path / "spool", engine=transport.engine), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url, transport, es
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_set_too_large_to_project_at_once_answers_202_with_progress(embedded_page, monkeypatch):
    from chroma_core.ui import jobs, projection

    url, transport, es = embedded_page
    monkeypatch.setattr(jobs, "INLINE_POINTS", 100)
    monkeypatch.setattr(projection, "CHUNK", 4)
    first = requests.get(f"{url}/v1/sets/{es.id}/map", timeout=10)
    assert first.status_code == 202 and first.headers["retry-after"] == "1"
    progress = first.json()
    assert progress["status"] == "projecting" and progress["total"] == 360 and 0 <= progress["done"] <= 360
    seen = [progress["done"]]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/v1/sets/{es.id}/map", timeout=10)
        if response.status_code == 200:
            break
        assert response.status_code == 202
        seen.append(response.json()["done"])
        time.sleep(0.02)
    assert response.headers["content-type"] == "application/x-chroma-map"
    assert seen == sorted(seen)
    got = Projection.from_bytes(response.content)
    assert np.array_equal(got.xy, project(transport.engine.store, es.id).xy)
    assert requests.get(f"{url}/v1/sets/{es.id}/map?method=tsne", timeout=10).status_code == 422
    assert requests.get(f"{url}/v1/sets/{'f' * 40}/map", timeout=10).status_code == 404


def test_the_page_shows_progress_while_the_map_is_computed(browser, embedded_page, monkeypatch):
    from chroma_core.ui import jobs, projection

    url, _, _ = embedded_page
    monkeypatch.setattr(jobs, "INLINE_POINTS", 100)
    monkeypatch.setattr(projection, "CHUNK", 1)  # 360 chunks: long enough for the page to poll
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    page.goto(f"{url}/ui")
    page.wait_for_function("window.chromaUI && chromaUI.ready", timeout=60_000)
    seen = page.evaluate("chromaUI.progressSeen")
    assert seen and all(p["status"] == "projecting" and p["total"] == 360 for p in seen)  # it polled, then drew
    assert page.evaluate("chromaUI.points") == 360 and page.locator("#progress").is_hidden()
    page.close()
