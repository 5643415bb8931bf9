"""The web page at ``/`` end to end: the real ``detect serve`` in a subprocess, driven in Debian's
headless Chromium by Playwright (the system browser: Playwright's own download is not available).

One run without an API key: models listed, an image uploaded (boxes on the canvas and rows in
the table are the ones ``/v1/detect`` answered), a track job followed to its annotated VP8 video
(played to its end by the ``<video>`` element) and listed under past jobs; full-page screenshots
(1280x800, and a 390 px wide window) are saved to ``runs/test-artifacts/service-page.png`` and
``service-page-narrow.png`` and to the test's ``tmp_path``. One run with a key: the page shows the
401 message until the right key is entered, and keeps the key.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from detect.serve.process import ServiceProcess

CHROMIUM = Path("/usr/bin/chromium")
#: flags that keep Chromium off every network but loopback (no updates, sync, QUIC, first-run pings)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "runs" / "test-artifacts"
#: the model of the conftest's ``model_dir``: an untrained Faster R-CNN that scores class "1" 0.997 everywhere
MODEL, CLASSES = "tiny", [str(d) for d in range(10)]
API_KEY = "page-test-key-1234"
#: thresholds set on the page (and checked in the requests it sends); a few boxes keep the screenshot readable
CONF, MAX_DET = "0.5", 8

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 320x240 PNG of bright squares on a grey gradient."""
    path = tmp_path_factory.mktemp("media") / "shapes.png"
    rng = np.random.default_rng(0)
    pixels = np.zeros((240, 320, 3), np.uint8)
    pixels[:] = np.linspace(40, 200, 320, dtype=np.uint8)[None, :, None]
    for _ in range(6):
        x, y = int(rng.integers(0, 260)), int(rng.integers(0, 180))
        cv2.rectangle(pixels, (x, y), (x + 56, y + 56), [int(c) for c in rng.integers(0, 256, 3)], -1)
    cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A fresh browser context (no stored key) at ``url``; page errors and console errors are collected."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("console", lambda msg: page.problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.goto(url)
    return page


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / name)
    return shot


def table_rows(page) -> list[dict]:
    """The detections table as the page shows it, in the detections' original order."""
    rows = page.eval_on_selector_all("#detections tbody tr[data-index]", """rows => rows.map(r => ({
        index: Number(r.dataset.index), name: r.cells[1].textContent, score: r.cells[2].textContent,
        box: r.cells[3].textContent}))""")
    return sorted(rows, key=lambda r: r["index"])


def canvas_pixel(page, x: float, y: float, image_width: int) -> list[int]:
    """RGBA of the boxes canvas at pixel (x, y) of the uploaded image, ``image_width`` pixels wide."""
    return page.evaluate("""([x, y, width]) => {
        const canvas = document.getElementById('image-canvas');
        const scale = canvas.width / width;
        const pixel = canvas.getContext('2d').getImageData(Math.floor(x * scale), Math.floor(y * scale), 1, 1);
        return Array.from(pixel.data);
    }""", [x, y, image_width])


def swatch_rgb(page, index: int) -> list[int]:
    """The colour of detection ``index``'s class in the table."""
    css = page.eval_on_selector(f"#detections tr[data-index='{index}'] .swatch",
                                "s => getComputedStyle(s).backgroundColor")
    return [int(v) for v in re.findall(r"\d+", css)[:3]]


def test_page_detects_an_image_and_follows_a_video_job(model_dir: Path, image: Path, clip: Path, browser,
                                                       tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path / "service") as service:
        page = open_page(browser, service.url)
        # the model picker: the one model, selected as the default, its classes listed
        page.wait_for_selector(f"#model option[value='{MODEL}']", state="attached")
        assert page.input_value("#model") == MODEL
        assert page.locator("#model-classes li").all_text_contents() == CLASSES  # folded away: not inner text
        assert "torch" in page.inner_text("#model-info")

        page.fill("#conf", CONF)  # no image yet: nothing is sent
        page.fill("#max-det", str(MAX_DET))

        # not an image: the API's error as one readable line
        page.set_input_files("#image-file", files={"name": "notes.txt", "mimeType": "text/plain",
                                                   "buffer": b"hello, not an image\n"})
        error = page.locator("#image-error")
        error.wait_for()
        assert error.inner_text() == ("Error 415: the upload is not an image this service reads · expected: an "
                                      "image (JPEG, PNG, GIF, BMP, TIFF, WEBP, PPM) · got: text starting "
                                      "'hello, not an image\\n'")

        # an image: the table and the canvas show what /v1/detect answered
        with page.expect_response(lambda r: "/v1/detect" in r.url) as answer:
            page.set_input_files("#image-file", image)
        assert answer.value.status == 200
        assert f"conf={CONF}" in answer.value.url and f"max_det={MAX_DET}" in answer.value.url
        result = answer.value.json()
        assert result["image"] == {"width": 320, "height": 240} and page.is_hidden("#image-error")
        detections = result["detections"]
        assert len(detections) == MAX_DET
        page.wait_for_selector("#detections tbody tr[data-index]")
        rows = table_rows(page)  # scores shown to 3 decimals, box corners to whole pixels
        assert [r["index"] for r in rows] == list(range(len(detections)))
        for row, d in zip(rows, detections):
            assert row["name"] == d["name"] and float(row["score"]) == pytest.approx(d["score"], abs=5e-4)
            assert [float(v) for v in row["box"].split(",")] == pytest.approx(d["box"], abs=0.5)
        assert page.inner_text("#image-summary").startswith(f"{len(detections)} detection")
        assert "model" in page.inner_text("#timing")
        x1, y1, _, y2 = detections[-1]["box"]  # drawn last: its left edge is on top of every other box
        pixel, colour = canvas_pixel(page, x1, (y1 + y2) / 2, 320), swatch_rgb(page, len(detections) - 1)
        assert pixel[3] > 200 and all(abs(p - c) < 40 for p, c in zip(pixel, colour)), (pixel, colour)
        page.click("#detections th button[data-sort='score']")  # sorted by score, descending first: now ascending
        scores = [float(s) for s in page.locator("#detections tbody td:nth-child(3)").all_inner_texts()]
        assert scores == sorted(scores)

        # a video job (track): progress to the end, the annotated video playable, its files linked
        page.set_input_files("#video-file", clip)
        page.check("input[name=kind][value=track]")
        page.evaluate("""() => { window.jobStates = [];  // every state the badge shows, in order
            new MutationObserver(() => window.jobStates.push(document.getElementById('job-state').textContent))
                .observe(document.getElementById('job-state'), {childList: true}); }""")
        with page.expect_response(lambda r: r.url.endswith("/v1/jobs") and r.request.method == "POST") as created:
            page.click("#video-start")
        assert created.value.status == 201, created.value.text()
        job = created.value.json()
        assert job["kind"] == "track" and job["model"] == MODEL
        assert job["params"] | {"conf": float(CONF), "max_det": MAX_DET} == job["params"]
        page.wait_for_selector("#job-state.succeeded", timeout=120_000)
        seen = page.evaluate("window.jobStates")
        assert seen[0] in ("queued", "running") and seen[-1] == "succeeded", seen
        assert page.eval_on_selector("#job-progress", "p => p.value") == 1
        assert page.inner_text("#job-status").startswith("20 of 20 frames")  # the conftest's clip
        assert page.is_hidden("#job-cancel")
        page.wait_for_function("""() => { const v = document.getElementById('job-video');
            return !v.hidden && v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0; }""")
        video = page.eval_on_selector("#job-video", """v => new Promise((done, fail) => {  // played to the end
            v.addEventListener('ended', () => done({src: v.src, width: v.videoWidth, time: v.currentTime,
                                                    error: v.error}));
            setTimeout(() => fail(new Error(`not ended after 30 s: at ${v.currentTime} s of ${v.duration}`)), 30000);
            v.play().catch(fail); })""")
        assert video["width"] == 64 and video["error"] is None and video["time"] > 0
        answer = httpx.get(video["src"])
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("video/webm")
        links = page.locator("#job-links a").all_inner_texts()
        assert {"annotated.webm", "predictions.jsonl", "tracks.txt", "summary.json"} <= set(links), links

        # past jobs: the job is listed, succeeded, with its result links
        row = page.locator(f"#jobs tbody tr[data-job='{job['id']}']")
        row.wait_for()
        assert row.locator(".badge").inner_text() == "succeeded"
        assert row.locator("td.links a").count() >= 2
        assert page.inner_text("#jobs-range") == "1–1 of 1"

        save_screenshot(page, tmp_path, "service-page.png")
        page.set_viewport_size({"width": 390, "height": 800})  # a phone: one column, nothing wider than the window
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.eval_on_selector("#image-canvas", "c => c.getBoundingClientRect().right") <= 390
        save_screenshot(page, tmp_path, "service-page-narrow.png")
        assert not [p for p in page.problems if "status of 415" not in p], page.problems  # 415: the text file


def test_page_asks_for_the_api_key(model_dir: Path, image: Path, browser, tmp_path: Path) -> None:
    with ServiceProcess(model_dir, tmp_path / "service", env={"DETECT_SERVE_API_KEY": API_KEY}) as service:
        page = open_page(browser, service.url)
        notice = page.locator("#notice")
        notice.wait_for()
        assert "This service needs an API key" in notice.inner_text()
        assert "Error 401" in notice.inner_text() and "X-API-Key" in notice.inner_text()
        assert page.locator("#model option").all_inner_texts() == ["no models"]
        assert page.is_hidden("#models-failed") and page.is_hidden("#jobs-error")  # said once, at the top

        page.fill("#api-key", "not-the-key-at-all")
        page.click("#key-form button")
        page.wait_for_function("document.getElementById('notice').textContent.includes('refused')")
        assert page.locator("#model option").all_inner_texts() == ["no models"]

        page.fill("#api-key", API_KEY)
        page.click("#key-form button")
        page.wait_for_selector(f"#model option[value='{MODEL}']", state="attached")
        assert page.is_hidden("#notice")
        page.fill("#conf", CONF)
        page.set_input_files("#image-file", image)
        page.wait_for_selector("#detections tbody tr")
        assert page.is_hidden("#image-error")

        page.reload()  # the key is kept in localStorage
        page.wait_for_selector(f"#model option[value='{MODEL}']", state="attached")
        assert page.input_value("#api-key") == API_KEY and page.is_hidden("#notice")
        assert not [p for p in page.problems if "401" not in p], page.problems
