"""Two real Chromium participants with fake cameras (the astronaut) in one emoji room, and its host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_live_browser import write_y4m
from web_helpers import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_MISSING, REAL_PREDICTOR, served_app
from webapp.live.views import SOCKETIO_CLIENT_DIR

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=CHROMIUM_MISSING),
    pytest.mark.skipif(not (SOCKETIO_CLIENT_DIR / "socket.io.min.js").exists(),
                       reason="node_modules/socket.io-client is missing; run `npm install` in the repo root"),
]


def received_frames(page) -> list:
    """Every WebSocket message this page receives, kept as it arrives."""
    frames: list = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(payload)))
    return frames


def join(page, link: str, name: str) -> None:
    page.goto(link)
    page.locator("#room-name").fill(name)
    page.locator("#room-join button[type=submit]").click()
    page.locator("#room-share").click()


def test_two_participants_see_each_other_as_emoji(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    clip = tmp_path / "astronaut.y4m"
    write_y4m(clip)
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-video-capture={clip}"]
    with served_app(tmp_path, PREDICTOR=REAL_PREDICTOR) as (_app, base_url), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            host = browser.new_context().new_page()
            host.goto(base_url + "/rooms/")
            host.locator("#room-create").click()
            expect(host.locator("#room-status")).to_have_text("You are hosting this room.", timeout=10_000)
            link = host.locator("#room-link").input_value()

            ann, bob = browser.new_context().new_page(), browser.new_context().new_page()
            bob_frames = received_frames(bob)
            join(ann, link, "Ann")
            join(bob, link, "Bob")

            # Each sees both tiles, with an emoji and a label, updated from the other's camera.
            for page in (ann, bob, host):
                expect(page.locator(".room-tile[data-state=sharing]")).to_have_count(2, timeout=30_000)
            ann_on_bob = bob.locator(".room-tile:not(.me)")
            expect(ann_on_bob.locator(".tile-name")).to_have_text("Ann")
            # Frames where the detector misses the face show "no face in view"; most show an expression.
            expect(ann_on_bob.locator(".tile-label")).to_contain_text("looks ", timeout=10_000)
            assert ann_on_bob.locator(".tile-emoji").inner_text().strip()
            expect(bob.locator(".room-tile.me .tile-name")).to_have_text("Bob (you)")

            # The host's mood strip fills in (polled every few seconds).
            expect(host.locator("#room-mood li")).not_to_have_count(0, timeout=15_000)
            assert host.locator("#room-mood li").first.get_attribute("aria-label").count("%") == 7

            # Recording needs everyone's consent: participants are asked.
            host.locator("#room-record").check()
            expect(bob.locator("#room-consent")).to_be_visible()
            expect(host.locator("#room-recording")).to_contain_text("0 of 2 participants agreed")
            bob.locator("#room-agree").click()
            expect(host.locator("#room-recording")).to_contain_text("1 of 2 participants agreed")

            # Pausing shows Ann as paused; leaving removes her tile.
            ann.locator("#room-pause").click()
            expect(ann_on_bob).to_have_attribute("data-state", "paused")
            expect(ann.locator("#room-status")).to_have_text("Paused: the room sees you as paused.")
            assert ann.evaluate("document.getElementById('room-video').srcObject === null")  # camera light off
            ann.locator("#room-leave").click()
            expect(bob.locator(".room-tile")).to_have_count(1)
            expect(host.locator(".room-tile")).to_have_count(1)
        finally:
            browser.close()
    # Bob's browser received text messages only: tiles and statuses, never a frame or an image of Ann.
    assert bob_frames and all(isinstance(frame, str) for frame in bob_frames)
    assert not any("data:image" in frame or "\"box\"" in frame for frame in bob_frames)
    tiles = [json.loads(frame[frame.index("["):])[1] for frame in bob_frames
             if frame.startswith("42/room,") and '"tile"' in frame]
    assert any(tile.get("name") == "Ann" and tile.get("state") == "sharing" for tile in tiles)
