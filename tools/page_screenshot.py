"""A screenshot of the service's web page on a real model, for the docs (docs/images/service-page.png).

Starts ``detect serve`` on loopback with the given model, opens the page in Debian's headless
Chromium (Playwright with the system browser), runs a track job on a rendered digit-scenes video
(``detect data video``), uploads an image and saves a full-page screenshot.

    python tools/page_screenshot.py --model models/digits-frcnn-r18.pt --out docs/images/service-page.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    from loadtest import start_service
    from playwright.sync_api import sync_playwright

    from detect.data.video_config import video_config
    from detect.data.video_scenes import write_video

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models/digits-frcnn-r18.pt")
    p.add_argument("--image", type=Path, default=ROOT / "detect/serve/static/example.jpg")
    p.add_argument("--conf", default="0.5")
    p.add_argument("--out", type=Path, default=ROOT / "docs/images/service-page.png")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="page-") as tmp:
        write_video(video_config("small", frames=40, seed=1), Path(tmp) / "video", progress=False)
        server = start_service(args.model, {}, Path(tmp), 2)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(300_000)
                page.goto(server.url)
                page.wait_for_selector("#model:not([disabled])")
                page.fill("#conf", args.conf)
                page.check("input[value=track]")
                page.set_input_files("#video-file", str(Path(tmp) / "video" / "video.mp4"))
                page.click("#video-start")
                page.wait_for_selector("#job-video:not([hidden])")
                page.set_input_files("#image-file", str(args.image))
                page.wait_for_selector("#image-result:not([hidden])")
                page.wait_for_timeout(1500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
