"""A real Chromium on the photo pages: one face and a crowded photo at desktop and phone size, answers about faces,
a stranger's read-only view, deletion, errors, and axe-core on every page and state.

Set SCREENSHOT_DIR to also save the screenshots the README shows (docs/screenshots).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from browser_support import (DESKTOP, PHONE, REPO_ROOT, assert_accessible, astronaut_png, boxes_of, browser_marks,
                             chromium, crowd_jpeg, in_view, intersects, new_page)
from fakes_crowd import CROWD_SPEC
from web_helpers import REAL_PREDICTOR, image_bytes, served_app
from webapp.db import get_session
from webapp.models import Correction

pytestmark = browser_marks()
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def screenshot(page, name: str, full_page: bool = False) -> None:
    """Save a screenshot when SCREENSHOT_DIR is set (the README's pictures are made this way)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.jpg"), full_page=full_page, quality=80)


@pytest.fixture(scope="module")
def real_app(tmp_path_factory):
    """The app with the real shipped model on a real HTTP server; (app, base URL)."""
    with served_app(tmp_path_factory.mktemp("real"), PREDICTOR=REAL_PREDICTOR) as served:
        yield served


def upload(page, base_url: str, photo: Path, keep: bool = False) -> None:
    """Choose a photo (which does not send it), optionally tick "keep my photo", then press Analyse."""
    from playwright.sync_api import expect

    page.goto(base_url + "/")
    page.set_input_files("#image", str(photo))
    expect(page.locator("#chosen")).to_contain_text(photo.name)
    expect(page.locator("#results")).to_be_empty()  # choosing alone sends nothing
    if keep:
        page.locator("#keep_photo").check()
    page.locator("#analyse-button").click()
    expect(page.locator("#results-heading")).to_be_focused(timeout=60_000)


def answers(app) -> list[tuple[str, str]]:
    """(kind, emotion) of every stored answer."""
    with app.app_context():
        return [(c.kind, c.emotion) for c in get_session().scalars(select(Correction).order_by(Correction.id))]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_one_face_result_is_in_view_and_answers_change_and_withdraw(real_app, tmp_path, viewport):
    from playwright.sync_api import expect

    app, base_url = real_app
    photo = astronaut_png(tmp_path / "astronaut.png")
    size = "desktop" if viewport is DESKTOP else "phone"
    with chromium() as browser:
        page = new_page(browser, viewport)
        page.goto(base_url + "/")
        assert_accessible(page, f"the upload page ({size})")
        upload(page, base_url, photo, keep=True)
        face = page.locator(".face").first
        expect(face.locator(".bar")).to_have_count(7)
        expect(face.locator(".bar.top")).to_have_count(1)
        assert page.locator(".note").first.inner_text().startswith("These scores describe the facial expression")
        # The photo and the scores are on screen together, without scrolling.
        assert in_view(page, ".photo") and in_view(page, ".face .bars")
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        page.wait_for_function("() => document.querySelector('canvas.thumb').toDataURL().length > 3000")
        screenshot(page, f"photo-one-face-{size}")
        assert_accessible(page, f"a one-face result ({size})")

        before = len(answers(app))
        form = face.locator("form.feedback")
        top = form.get_attribute("data-top")
        other = next(b for b in form.locator("button[name=emotion]").all())
        other_label = other.get_attribute("value")
        other.click()
        expect(other).to_have_attribute("aria-pressed", "true")
        expect(form.locator(".thanks")).to_contain_text(f"Your answer: {other_label}")
        form.locator("button.confirm").click()  # changing the answer replaces it
        expect(form.locator("button.confirm")).to_have_attribute("aria-pressed", "true")
        expect(other).to_have_attribute("aria-pressed", "false")
        assert answers(app)[before:] == [("confirmation", top)]
        assert_accessible(page, f"a result with an answer ({size})")
        form.locator("button.withdraw").click()
        expect(form.locator(".thanks")).to_have_text("Your answer was withdrawn.")
        expect(form.locator("button.withdraw")).to_be_hidden()
        expect(form.locator("button.confirm")).to_be_focused()
        assert len(answers(app)) == before

        # The permalink page shows the kept photo; a reload remembers the visitor's answer as pressed.
        other.click()
        expect(other).to_have_attribute("aria-pressed", "true")
        page.goto(base_url + page.locator("a.permalink").get_attribute("href"))
        expect(page.locator(f"button[value={other_label}]")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("img.result-photo")).to_be_visible()
        assert_accessible(page, f"the owner's permalink page ({size})")

        # Delete asks first, then says what happened where the focus now is.
        page.locator(".delete-zone summary").click()
        assert_accessible(page, f"the delete confirmation ({size})")
        page.get_by_role("button", name="Yes, delete").click()
        expect(page.locator(".deleted")).to_be_focused()
        assert_accessible(page, f"after deleting ({size})")

        # The footer's responsible-use page, with the real model's card and per-class figures.
        page.get_by_role("link", name="Responsible use, accuracy and privacy").click()
        expect(page.locator("table.figures tbody tr")).to_have_count(7)
        evaluated = json.loads((REPO_ROOT / "docs" / "evaluation" / "report.json").read_text())["accuracy"]
        expect(page.locator("main")).to_contain_text(f"{100 * evaluated:.0f}%")
        assert_accessible(page, f"the responsible-use page ({size})")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_crowded_photo_has_numbered_labels_that_never_collide(real_app, tmp_path, viewport):
    from playwright.sync_api import expect

    app, base_url = real_app
    size = "desktop" if viewport is DESKTOP else "phone"
    with chromium() as browser:
        page = new_page(browser, viewport)
        upload(page, base_url, crowd_jpeg(tmp_path / "group.jpg"))
        expect(page.locator("#results-heading")).to_have_text("20 faces found")
        labels, boxes = boxes_of(page, ".box-label"), boxes_of(page, ".box")
        assert len(labels) == len(boxes) == 20
        for i, label in enumerate(labels):
            for j, other in enumerate(labels):
                assert i == j or not intersects(label, other), f"labels {i + 1} and {j + 1} overlap"
            for j, box in enumerate(boxes):
                assert not intersects(label, box), f"label {i + 1} covers face {j + 1}"
        # Reading order: box N+1 is right of box N in the same row, or in a lower row.
        numbers = page.eval_on_selector_all(".box", "els => els.map((e) => Number(e.dataset.number))")
        ordered = [box for _, box in sorted(zip(numbers, boxes), key=lambda pair: pair[0])]
        for first, second in zip(ordered, ordered[1:]):
            same_row = abs(first["y"] - second["y"]) < first["height"] / 2
            assert (same_row and second["x"] > first["x"]) or second["y"] > first["y"] + first["height"] / 2
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert in_view(page, ".photo") and in_view(page, ".face-grid .face")
        screenshot(page, f"photo-crowd-{size}")
        assert_accessible(page, f"a 20-face result ({size})")

        # The compact view: one tab stop per face; Enter opens its bars, which name the same number.
        summaries = page.locator(".face-grid summary")
        expect(summaries).to_have_count(20)
        summaries.nth(2).focus()
        page.keyboard.press("Enter")
        opened = page.locator(".face-grid details[open]")
        expect(opened).to_have_count(1)
        expect(opened.locator("h3")).to_contain_text("Face 3")
        expect(opened.locator(".bar")).to_have_count(7)
        expect(page.locator('.box-label[data-number="3"]')).to_have_class("box-label active")
        assert_accessible(page, f"a 20-face result with one face open ({size})")


def test_a_stranger_sees_a_read_only_result_and_cannot_answer(tmp_path):
    from playwright.sync_api import expect

    with served_app(tmp_path, PREDICTOR=CROWD_SPEC) as (app, base_url), chromium() as browser:
        owner = new_page(browser)
        photo = tmp_path / "group.png"
        photo.write_bytes(image_bytes(400, 300))
        upload(owner, base_url, photo)
        permalink = base_url + owner.locator("a.permalink").get_attribute("href")
        analysis_id = permalink.rsplit("/", 1)[1]

        stranger = new_page(browser)  # another browser context: other cookies, so another visitor
        stranger.goto(permalink)
        expect(stranger.locator(".read-only")).to_contain_text("read-only")
        expect(stranger.locator("form.feedback")).to_have_count(0)
        expect(stranger.locator(".delete-zone")).to_have_count(0)
        assert_accessible(stranger, "a stranger's permalink page")
        status = stranger.evaluate("""async (id) => (await fetch("/api/v1/feedback", {method: "POST",
            headers: {"Content-Type": "application/json",
                      "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content},
            body: JSON.stringify({analysis_id: id, face_index: 0, emotion: "sad"})})).status""", analysis_id)
        assert status == 403
        assert answers(app) == []


def test_errors_clear_the_old_result_and_no_face_says_what_helps(tmp_path):
    from playwright.sync_api import expect

    with served_app(tmp_path) as (app, base_url), chromium() as browser:
        page = new_page(browser, PHONE)
        good, tiny, broken = tmp_path / "good.png", tmp_path / "tiny.png", tmp_path / "broken.png"
        good.write_bytes(image_bytes(320, 240))
        tiny.write_bytes(image_bytes(48, 40))
        broken.write_bytes(b"not an image at all")
        upload(page, base_url, tiny)
        expect(page.locator("#results-heading")).to_have_text("No face found")
        expect(page.locator(".no-face")).to_contain_text("The image is small (48\u00d740 pixels)")
        assert_accessible(page, "a no-face result")
        page.locator("#read-whole").click()  # the same picture again, read as one cropped face
        expect(page.locator("#results-heading")).to_have_text("1 face found")
        assert page.locator("#read-whole").count() == 0
        upload(page, base_url, good)
        page.set_input_files("#image", str(broken))
        page.locator("#analyse-button").click()
        expect(page.locator("#error")).not_to_be_empty()
        expect(page.locator("#results")).to_be_empty()
        assert_accessible(page, "an error after a result")
        page.goto(base_url + "/a/no-such-analysis")
        expect(page.locator("h1")).to_contain_text("404")
        assert_accessible(page, "the error page")
        page.goto(base_url + "/responsible-use")
        expect(page.locator("h1")).to_have_text("What Emotion Lens can and cannot tell")
        expect(page.locator("main")).to_contain_text("Article\u00a05(1)(f)")
        assert_accessible(page, "the responsible-use page")
