"""The video page in a real Chromium: upload, progress, one chart per face, and the result survives a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_video import make_clip
from web_helpers import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, served_app

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=CHROMIUM_MISSING)]


def test_video_page_uploads_charts_and_survives_a_reload(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    clip = make_clip(tmp_path / "astronaut.mp4")
    with served_app(tmp_path) as (_app, base_url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base_url + "/video")
            page.locator("#video-file").set_input_files(str(clip))
            page.locator("#video-form button[type=submit]").click()
            expect(page.locator("#video-status")).to_have_text("Done.", timeout=30_000)
            assert "/video/" in page.url  # the job id is in the address
            expect(page.locator("#video-tracks canvas")).to_have_count(1)
            expect(page.locator("#video-summary")).to_contain_text("1 face track(s) in 3.0 s, 6 frames analysed")
            assert page.locator("#video-csv").get_attribute("href").endswith("?format=csv")
            page.reload()
            expect(page.locator("#video-tracks canvas")).to_have_count(1, timeout=10_000)
            assert page.locator("#video-form").is_hidden()
            job_url = page.url
            page.locator("#video-delete").click()
            expect(page.locator("#video-status")).to_have_text("Removed.")
            assert page.url.endswith("/video") and page.locator("#video-form").is_visible()
            page.goto(job_url)  # a removed result is gone for good
            expect(page.locator("#video-error")).to_contain_text("no such video job")
        finally:
            browser.close()
