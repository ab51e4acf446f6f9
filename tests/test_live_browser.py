"""A real Chromium with a fake camera (the astronaut) streams to /live: boxes, emoji, moving bars, fps."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from web_helpers import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, REAL_PREDICTOR, served_app
from webapp.db import get_session
from webapp.live.views import SOCKETIO_CLIENT_DIR
from webapp.models import Correction

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=CHROMIUM_MISSING),
    pytest.mark.skipif(not (SOCKETIO_CLIENT_DIR / "socket.io.min.js").exists(),
                       reason="node_modules/socket.io-client is missing; run `npm install` in the repo root"),
]


def write_y4m(path: Path, frames: int = 12) -> None:
    """A YUV4MPEG2 (4:2:0) clip of the astronaut in a 640x480 frame, brightness changing frame to frame."""
    from skimage.data import astronaut

    canvas = np.full((480, 640, 3), 90, np.float32)
    canvas[40:440, 120:520] = np.asarray(Image.fromarray(astronaut()).resize((400, 400), Image.BILINEAR))
    with open(path, "wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for number in range(frames):
            rgb = np.clip(canvas * (0.7 + 0.5 * number / frames), 0, 255)
            r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
            # Full-range BT.601, the matrix "420jpeg" means; chroma averaged over 2x2 blocks.
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = (b - y) * 0.564 + 128
            v = (r - y) * 0.713 + 128
            out.write(b"FRAME\n")
            for plane, step in ((y, 1), (u, 2), (v, 2)):
                if step == 2:
                    plane = plane.reshape(240, 2, 320, 2).mean(axis=(1, 3))
                out.write(np.clip(plane + 0.5, 0, 255).astype(np.uint8).tobytes())


@pytest.fixture
def live_server(tmp_path):
    """The app with the real shipped model, on a real HTTP server; (app, base URL)."""
    with served_app(tmp_path, PREDICTOR=REAL_PREDICTOR) as served:
        yield served


def bar_values(page) -> list[str]:
    """The percentages shown on the first face's bars."""
    return page.locator(".live-face").first.locator(".bar-value").all_inner_texts()


def test_live_page_streams_the_camera(live_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    app, base_url = live_server
    clip = tmp_path / "astronaut.y4m"
    write_y4m(clip)
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-video-capture={clip}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page()
            page.goto(base_url + "/live")
            page.locator("#live-start").press("Enter")  # keyboard, like a visitor without a mouse
            expect(page.locator("#live-overlay .live-box")).not_to_have_count(0, timeout=20_000)
            assert page.locator("#live-overlay .live-emoji").first.inner_text().strip()
            expect(page.locator(".live-face").first.locator(".bar")).to_have_count(7)
            expect(page.locator("#live-fps")).not_to_have_text("0", timeout=5_000)
            assert float(page.locator("#live-fps").inner_text()) > 0
            assert float(page.locator("#live-rtt").inner_text()) > 0
            first = bar_values(page)
            deadline = time.monotonic() + 10
            while bar_values(page) == first and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            assert bar_values(page) != first, "the bars should follow the changing picture"

            page.locator("#live-wrong").click()
            expect(page.locator("#live-correct-heading")).to_be_focused()
            page.locator("#live-correct input[type=radio][value=surprise]").first.check()
            page.locator("#live-correct button[type=submit]").click()
            expect(page.locator("#live-correct-status")).to_contain_text("Thank you", timeout=15_000)

            page.locator("#live-stop").click()
            assert page.evaluate("document.getElementById('live-video').srcObject === null")
            expect(page.locator("#live-status")).to_have_text("Camera stopped.")
        finally:
            browser.close()
    with app.app_context():
        [correction] = get_session().scalars(select(Correction)).all()
        assert correction.emotion == "surprise" and not correction.consent_crop and correction.crop_path is None
    deadline = time.monotonic() + 5
    while len(app.extensions["emotion_lens.live"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(app.extensions["emotion_lens.live"]) == 0, "stopping the camera closes the stream"
