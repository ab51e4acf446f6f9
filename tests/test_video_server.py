"""Video jobs and rooms on the real server (python -m webapp, eventlet): a clip's analysis never stalls the loop,
and a room's broadcasts reach every participant."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import requests
import socketio

from fakes_live import SLOW_SECONDS
from test_live_server import server_url  # noqa: F401 - the eventlet server with the slow fake model
from web_helpers import image_bytes

pytestmark = pytest.mark.slow
FAST_ENOUGH_S = 0.3  # what a page request may wait while the video worker blocks its OS thread


def black_clip(path, seconds: int = 3, fps: int = 5):
    """A black MP4: every sampled frame costs the slow predictor SLOW_SECONDS of blocked CPU thread."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (128, 96))
    for _ in range(seconds * fps):
        writer.write(np.zeros((96, 128, 3), np.uint8))  # black survives MPEG-4 exactly
    writer.release()
    return path


def test_a_video_job_does_not_stall_the_event_loop(server_url, tmp_path):
    clip = black_clip(tmp_path / "black.mp4")
    with open(clip, "rb") as handle:
        answer = requests.post(f"{server_url}/api/v1/videos", files={"video": ("black.mp4", handle)},
                               data={"fps": "1"}, timeout=10)
    assert answer.status_code == 202, answer.text
    status_url = server_url + answer.json()["status_url"]
    time.sleep(0.5)  # the worker is now blocked inside the first frame's analysis
    waits = []
    for _ in range(5):
        started = time.perf_counter()
        body = requests.get(status_url, timeout=5).json()
        assert requests.get(f"{server_url}/api/v1/health", timeout=5).status_code == 200
        waits.append(time.perf_counter() - started)
        assert body["status"] == "running"
        time.sleep(0.1)
    assert max(waits) < FAST_ENOUGH_S, waits
    assert requests.delete(status_url, timeout=5).status_code == 204  # cancelled before the next frame
    assert requests.get(status_url, timeout=5).status_code == 404


def test_room_results_reach_the_other_participant(server_url):
    page = requests.Session()
    created = page.get(f"{server_url}/rooms/", timeout=5)
    token = created.text.split('name="csrf_token" value="')[1].split('"')[0]
    room_id = page.post(f"{server_url}/rooms/", data={"csrf_token": token}, allow_redirects=False,
                        timeout=5).headers["Location"].split("/")[2]
    ann, bob = socketio.Client(), socketio.Client()
    seen = threading.Event()
    tiles = []

    @bob.on("tile", namespace="/room")
    def on_tile(tile):
        tiles.append(tile)
        if tile.get("state") == "sharing":
            seen.set()

    try:
        for person in (ann, bob):
            person.connect(server_url, namespaces=["/room"], transports=["websocket"])
        assert "participant" in ann.call("join", {"room": room_id, "name": "Ann"}, namespace="/room", timeout=5)
        assert "participant" in bob.call("join", {"room": room_id, "name": "Bob"}, namespace="/room", timeout=5)
        ann.call("share", {"on": True}, namespace="/room", timeout=5)
        own = ann.call("frame", image_bytes(fmt="JPEG", seed=3), namespace="/room", timeout=5 + SLOW_SECONDS)
        assert own["state"] == "sharing"
        assert seen.wait(5)
        assert [tile for tile in tiles if tile["state"] == "sharing"] == [own]
    finally:
        ann.disconnect()
        bob.disconnect()
