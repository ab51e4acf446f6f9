"""A real Chromium uploads the astronaut photo, sees boxes, bars and an emoji, and sends a correction."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from werkzeug.serving import make_server

from web_helpers import make_config
from fakes import FAKE_SPEC
from webapp import create_app
from webapp.db import get_session
from webapp.inference import close_predictor
from webapp.models import Correction

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-gpu"]
# The one knob to switch this test to the real model: e.g. model_server.pipeline:create_pipeline.
PREDICTOR = os.environ.get("EMO_BROWSER_TEST_PREDICTOR", FAKE_SPEC)

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing "
                                 "(apt-get install chromium); Playwright's own browsers are never downloaded")]


@pytest.fixture
def live_app(tmp_path):
    """The app served by a real HTTP server in a background thread (threading mode); (app, base URL)."""
    app = create_app(make_config(tmp_path, PREDICTOR=PREDICTOR))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    close_predictor(app)


@pytest.fixture
def astronaut_png(tmp_path) -> Path:
    """scikit-image's astronaut photo (one face) as a PNG file."""
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_upload_shows_faces_and_stores_a_correction(live_app, astronaut_png):
    from playwright.sync_api import expect, sync_playwright

    app, base_url = live_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base_url + "/")
            page.set_input_files("#image", str(astronaut_png))  # choosing a file submits it
            face = page.locator(".face").first
            expect(face).to_be_visible(timeout=60_000)
            expect(page.locator(".photo .box")).not_to_have_count(0)
            expect(face.locator(".bar")).to_have_count(7)
            expect(face.locator(".bar.top")).to_have_count(1)
            assert face.locator(".emoji").inner_text().strip()
            assert page.locator(".local-photo").is_visible()  # the photo shown from the visitor's device
            expect(page.locator("#results-heading")).to_be_focused()

            page.locator("#consent-0").check()
            face.get_by_role("button", name="surprise").click()
            expect(face.locator(".thanks")).to_contain_text("Thank you", timeout=10_000)
        finally:
            browser.close()
    with app.app_context():
        [correction] = get_session().scalars(select(Correction)).all()
        assert correction.emotion == "surprise" and correction.consent_crop and correction.crop_path
