"""A real Chromium uploads the astronaut photo, sees boxes, bars and an emoji, and sends a correction."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from web_helpers import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, REAL_PREDICTOR, served_app
from webapp.db import get_session
from webapp.models import Correction

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                                                         reason=CHROMIUM_MISSING)]


@pytest.fixture
def live_app(tmp_path):
    """The app with the real shipped model, on a real HTTP server; (app, base URL)."""
    with served_app(tmp_path, PREDICTOR=REAL_PREDICTOR) as served:
        yield served


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
