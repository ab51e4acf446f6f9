"""A real Chromium with a fake camera (the astronaut) streams to /live: numbered boxes, moving bars, the uPlot chart
with its axes and legend, a correction on the frozen frame, and Stop; axe-core in every state, desktop and phone."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from browser_support import DESKTOP, PHONE, assert_accessible, browser_marks, chromium, in_view, new_page
from test_browser_upload import SCREENSHOTS, screenshot
from web_helpers import REAL_PREDICTOR, served_app
from webapp.about import NODE_MODULES, VENDOR_FILES
from webapp.db import get_session
from webapp.live.views import SOCKETIO_CLIENT_DIR
from webapp.models import Correction

pytestmark = browser_marks() + [
    pytest.mark.skipif(not (SOCKETIO_CLIENT_DIR / "socket.io.min.js").exists()
                       or not all((NODE_MODULES / path).exists() for path in VENDOR_FILES.values()),
                       reason="node_modules (socket.io-client, uplot) is missing; run `npm ci` in the repo root"),
]


def write_y4m(path: Path, frames: int = 12) -> None:
    """A YUV4MPEG2 (4:2:0) clip of the astronaut in a 640x480 frame, moving and changing brightness frame to frame.

    Both, because a model trained to ignore lighting can read every frame of a still face the same to the
    percent; a moving face changes the crop the model sees.
    """
    from skimage.data import astronaut

    face = np.asarray(Image.fromarray(astronaut()).resize((400, 400), Image.BILINEAR)).astype(np.float32)
    with open(path, "wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for number in range(frames):
            canvas = np.full((480, 640, 3), 90, np.float32)
            left, top = 80 + 8 * number, 34 + 3 * (number % 4)
            canvas[top:top + 400, left:left + 400] = face
            rgb = np.clip(canvas * (0.6 + 0.6 * number / frames), 0, 255)
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


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_live_page_streams_the_camera(live_server, tmp_path, viewport):
    from playwright.sync_api import expect

    app, base_url = live_server
    size = "desktop" if viewport is DESKTOP else "phone"
    clip = tmp_path / "astronaut.y4m"
    write_y4m(clip)
    args = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}")
    with chromium(args) as browser:
        page = new_page(browser, viewport)
        page.goto(base_url + "/live")
        # The chart is there before the camera: a time axis, a 0-100 % axis and a legend naming every emotion.
        chart = page.locator("#live-chart")
        expect(chart.locator(".u-legend .u-series")).to_have_count(8)  # time plus seven emotions
        for label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"):
            expect(chart.locator(".u-legend")).to_contain_text(label)
        expect(chart.locator(".u-axis")).to_have_count(2)
        assert page.locator(".note").inner_text().startswith("These scores describe the facial expression")
        assert_accessible(page, f"the live page before starting ({size})")

        page.locator("#live-start").press("Enter")  # keyboard, like a visitor without a mouse
        expect(page.locator("#live-overlay .live-box")).not_to_have_count(0, timeout=20_000)
        assert page.locator("#live-overlay .live-emoji").first.inner_text().strip()
        # Box numbers are the list's face numbers.
        expect(page.locator("#live-overlay .live-number").first).to_have_text("1")
        expect(page.locator(".live-face h3").first).to_have_text("Face 1 ")
        expect(page.locator(".live-face").first.locator(".bar")).to_have_count(7)
        expect(page.locator("#live-fps")).not_to_have_text("0", timeout=5_000)
        assert float(page.locator("#live-fps").inner_text()) > 0
        assert float(page.locator("#live-rtt").inner_text()) > 0
        first = bar_values(page)
        deadline = time.monotonic() + 10
        while bar_values(page) == first and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert bar_values(page) != first, "the bars should follow the changing picture"
        page.wait_for_timeout(1500)  # a second or two of history on the chart
        # The axes are drawn on the canvas; their tick labels are read from the uPlot instance.
        time_ticks, score_ticks = page.evaluate("() => document.getElementById('live-chart').uplot.axes"
                                                ".map((axis) => axis._values)")
        assert score_ticks == ["0%", "25%", "50%", "75%", "100%"]
        assert len(time_ticks) >= 3 and all(tick.count(":") == 2 for tick in time_ticks), time_ticks
        happy = page.locator("#live-chart .u-legend .u-series").nth(4)
        expect(happy).to_contain_text("happy")
        expect(happy.locator(".u-value")).to_have_text(re.compile(r"^\d+%$"))  # the newest score, in percent
        window = page.evaluate("() => { const x = document.getElementById('live-chart').uplot.scales.x;"
                               " return x.max - x.min; }")
        assert window == pytest.approx(60), "the time axis spans 60 seconds from the first point on"
        if SCREENSHOTS:
            page.wait_for_timeout(15_000)  # a longer line for the README's picture
        screenshot(page, f"live-{size}", full_page=True)
        assert_accessible(page, f"the live page while streaming ({size})")

        page.locator("#live-wrong").click()
        expect(page.locator("#live-correct-heading")).to_be_focused()
        # The frozen frame and its form are on screen together.
        assert in_view(page, "#live-frozen") or in_view(page, "#live-stage")
        assert in_view(page, "#live-correct-heading") and in_view(page, "#live-correct fieldset")
        expect(page.locator("#live-correct legend").first).to_have_text("Face 1: shown as happy")
        expect(page.locator("#live-correct label").first).to_contain_text("it\u2019s right (happy)")
        assert_accessible(page, f"the live page with a frozen frame ({size})")
        page.locator("#live-correct input[type=radio][value=surprise]").first.check()
        page.locator("#live-correct button[type=submit]").click()
        expect(page.locator("#live-correct-status")).to_contain_text("Thank you", timeout=15_000)
        expect(page.locator("#live-correct")).to_be_hidden(timeout=5_000)

        page.locator("#live-stop").click()
        assert page.evaluate("document.getElementById('live-video').srcObject === null")
        expect(page.locator("#live-status")).to_have_text("Camera stopped.")
        # Stop clears every reading and leaves the focus on Start.
        expect(page.locator("#live-start")).to_be_focused()
        expect(page.locator("#live-fps")).to_have_text("0")
        expect(page.locator("#live-rtt")).to_have_text("\u2013")
        expect(page.locator(".live-face")).to_have_count(0)
        expect(page.locator("#live-overlay .live-box")).to_have_count(0)
        assert_accessible(page, f"the live page after Stop ({size})")
    with app.app_context():
        [correction] = get_session().scalars(select(Correction)).all()
        assert correction.emotion == "surprise" and not correction.consent_crop and correction.crop_path is None
    deadline = time.monotonic() + 5
    while len(app.extensions["emotion_lens.live"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(app.extensions["emotion_lens.live"]) == 0, "stopping the camera closes the stream"
