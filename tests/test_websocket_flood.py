"""A /live client flooding large frames on the real server (eventlet) does not freeze other clients (issue 9)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import socketio

# The live tests' real eventlet server; its slow fake predictor only stalls on one-colour images, and these
# frames do not even decode, so it answers them at once.
from test_live_server import server_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow
# eventlet's own unmask took ~250 ms per MB on the event loop: 40 frames of 500 KB froze everyone for ~5-7 s.
WORST_WAIT_S = 1.5


def test_a_flood_of_large_frames_does_not_freeze_other_clients(server_url):
    waits, done = [], threading.Event()

    def other_client():
        """Asks for health every 50 ms while the flood runs, keeping how long each answer took."""
        while not done.is_set():
            started = time.monotonic()
            requests.get(f"{server_url}/api/v1/health", timeout=30)
            waits.append(time.monotonic() - started)
            time.sleep(0.05)

    prober = threading.Thread(target=other_client, daemon=True)
    prober.start()
    flooder = socketio.Client(reconnection=False)
    flooder.connect(server_url, namespaces=["/live"], transports=["websocket"])
    frame = b"\xff\xd8" + bytes(500 * 1024 - 2)  # under the frame cap, so every one is read and unmasked
    try:
        for _ in range(40):
            flooder.emit("frame", frame, namespace="/live")
        time.sleep(2.0)  # let the server work through what it received
    finally:
        flooder.disconnect()
        done.set()
        prober.join()
    assert len(waits) > 10 and max(waits) < WORST_WAIT_S, f"another client waited up to {max(waits):.2f} s"
