"""Two web processes of one site (gunicorn + eventlet) sharing Redis: one emoji room across both (rooms in Redis,
Socket.IO through the Redis queue), and a video uploaded to one, followed and removed through the other."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import socketio

from benchmarks.bench_upload import free_port, wait_healthy
from test_model_tier_web import redis_prefix  # noqa: F401 - a key prefix in the test Redis (skips without Redis)
from topology_helpers import REDIS_URL
from web_helpers import image_bytes

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def two_processes(tmp_path, redis_prefix):
    """Two ``gunicorn -k eventlet`` web processes of one site: same database, key, Redis store and queue."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
               EMO_DATABASE_URL=f"sqlite:///{tmp_path / 'site.db'}", EMO_MEDIA_DIR=str(tmp_path / "media"),
               EMO_SECRET_KEY="two-processes-" + "k" * 32, EMO_PREDICTOR="fakes:create_fake_predictor",
               EMO_RATELIMIT_ENABLED="0", EMO_SOCKETIO_MESSAGE_QUEUE=REDIS_URL,
               EMO_SOCKETIO_CHANNEL=f"{redis_prefix}-socketio")
    factory = (f"webapp:create_app({{'ROOM_STORE_URL': {REDIS_URL!r}, 'ROOM_STORE_PREFIX': {redis_prefix + ':'!r}, "
               f"'VIDEO_STORE_URL': {REDIS_URL!r}, 'VIDEO_STORE_PREFIX': {redis_prefix + ':v:'!r}}})")
    ports, processes = [free_port(), free_port()], []
    try:
        for port in ports:  # one after the other: each migrates the shared database at start-up
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-k", "eventlet", "-w", "1", "-b", f"127.0.0.1:{port}", factory],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                start_new_session=True))
            wait_healthy(f"http://127.0.0.1:{port}", processes[-1], timeout_s=90)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)


def test_a_room_spans_two_web_processes(two_processes):
    first, second = two_processes
    host_page = requests.Session()
    form = host_page.get(f"{first}/rooms/", timeout=5).text
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    room_id = host_page.post(f"{first}/rooms/", data={"csrf_token": token}, allow_redirects=False,
                             timeout=5).headers["Location"].split("/")[2]
    assert requests.get(f"{second}/rooms/{room_id}", timeout=5).status_code == 200  # the link works on both

    host, ann, bob = socketio.Client(), socketio.Client(), socketio.Client()
    seen = {"host": [], "bob": []}
    ann_sharing = threading.Event()
    host.on("tile", lambda tile: seen["host"].append(tile), namespace="/room")

    def bob_sees(tile):
        seen["bob"].append(tile)
        if tile["name"] == "Ann" and tile["state"] == "sharing":
            ann_sharing.set()

    bob.on("tile", bob_sees, namespace="/room")
    cookie = "; ".join(f"{name}={value}" for name, value in host_page.cookies.items())
    try:
        host.connect(first, namespaces=["/room"], transports=["websocket"], headers={"Cookie": cookie})
        assert host.call("host", {"room": room_id}, namespace="/room", timeout=5)["host_present"]
        ann.connect(first, namespaces=["/room"], transports=["websocket"])
        bob.connect(second, namespaces=["/room"], transports=["websocket"])
        ann_id = ann.call("join", {"room": room_id, "name": "Ann"}, namespace="/room", timeout=5)["participant"]
        joined = bob.call("join", {"room": room_id, "name": "Bob"}, namespace="/room", timeout=5)
        assert [tile["name"] for tile in joined["tiles"]] == ["Ann", "Bob"]  # the room state is shared
        ann.call("share", {"on": True}, namespace="/room", timeout=5)
        own = ann.call("frame", image_bytes(fmt="JPEG", seed=5), namespace="/room", timeout=5)
        assert own["state"] == "sharing" and own["id"] == ann_id
        # Ann's result, emitted by the first process, reaches Bob on the second through the message queue.
        assert ann_sharing.wait(5), seen["bob"]
        assert [tile for tile in seen["bob"] if tile["state"] == "sharing"] == [own]
        # And Bob's arrival, handled by the second process, reached the host on the first.
        deadline = time.monotonic() + 5
        while not any(tile["name"] == "Bob" for tile in seen["host"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(tile["name"] == "Bob" for tile in seen["host"])
        [minute] = host.call("mood", {}, namespace="/room", timeout=5)["minutes"]
        assert minute["participants"] == 1
    finally:
        for client in (host, ann, bob):
            client.disconnect()


def test_a_video_job_is_answered_by_either_process(two_processes, tmp_path):
    from test_video import make_clip

    first, second = two_processes
    clip = make_clip(tmp_path / "astronaut.mp4")
    with open(clip, "rb") as handle:
        answer = requests.post(f"{first}/api/v1/videos", files={"video": ("astronaut.mp4", handle)},
                               data={"fps": "2"}, timeout=10)
    assert answer.status_code == 202, answer.text
    status_path = answer.json()["status_url"]
    # The worker (a real OS thread under eventlet, with its own Redis client) reports through the board.
    deadline = time.monotonic() + 30
    while (body := requests.get(second + status_path, timeout=5).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["status"] == "done" and [len(t["samples"]) for t in body["result"]["tracks"]] == [6]
    assert requests.get(f"{second}{status_path}?format=csv", timeout=5).text.count("\n") == 7
    assert requests.delete(second + status_path, timeout=5).status_code == 204
    assert requests.get(first + status_path, timeout=5).status_code == 404
